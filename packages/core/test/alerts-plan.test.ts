import t from 'tap';
import { expectedIntervalMs, levelAbove, levelAtOrBelow, planAlerts, secretScrubber, type Condition, type OpenAlert } from '@wombat/core/alerts';

const opts = { cooldownMs: 60_000, repeatMs: 3_600_000, resolveAfterMs: 120_000 };
const cond = (severity: Condition['severity'] = 'warning', key = 'queue_length:canary'): Condition => ({
  key,
  kind: 'queue_length',
  severity,
  subject: 's',
  message: 'm',
  details: {},
});
const open = (over: Partial<OpenAlert> = {}): OpenAlert => ({
  id: 1,
  key: 'queue_length:canary',
  kind: 'queue_length',
  severity: 'warning',
  subject: 's',
  message: 'm',
  details: {},
  clearSince: null,
  lastNotifiedAt: new Date(0),
  notifiedSeverity: 'warning',
  ...over,
});

t.test('opens a new condition once and leaves an unchanged open alert alone', async (t) => {
  t.same(planAlerts([], [cond(), cond()], 1_000, opts), [{ type: 'open', condition: cond() }]);
  t.same(planAlerts([open()], [cond()], 1_000, opts), []);
});

t.test('a condition that clears resolves only after staying clear for resolveAfterMs', async (t) => {
  t.same(planAlerts([open()], [], 1_000, opts), [{ type: 'clearing', id: 1 }]);
  t.same(planAlerts([open({ clearSince: new Date(1_000) })], [], 60_000, opts), []);
  t.same(planAlerts([open({ clearSince: new Date(1_000) })], [], 121_000, opts), [{ type: 'resolve', id: 1 }]);
  // back before the clear period ended: the same alert continues, without a message
  t.same(planAlerts([open({ clearSince: new Date(1_000) })], [cond()], 60_000, opts), [{ type: 'update', id: 1, condition: cond(), notify: null }]);
});

t.test('an escalation is sent once the cooldown has passed; a repeat after repeatMs', async (t) => {
  const a = open({ lastNotifiedAt: new Date(100_000) });
  t.same(planAlerts([a], [cond('critical')], 130_000, opts), [{ type: 'update', id: 1, condition: cond('critical'), notify: null }], 'within the cooldown');
  t.same(planAlerts([a], [cond('critical')], 160_000, opts), [{ type: 'update', id: 1, condition: cond('critical'), notify: 'escalated' }]);
  t.same(planAlerts([a], [cond('warning')], 100_000 + 3_600_000, opts), [{ type: 'update', id: 1, condition: cond(), notify: 'repeated' }]);
  t.same(planAlerts([a], [cond('warning')], 100_000 + 3_600_000, { ...opts, repeatMs: 0 }), [], 'repeatMs 0: never');
});

t.test('alerts of kinds that could not be evaluated stay open', async (t) => {
  t.same(planAlerts([open()], [], 1_000, opts, new Set(['queue_length'])), []);
});

t.test('threshold levels', async (t) => {
  t.equal(levelAbove(10, 10, 50), null);
  t.equal(levelAbove(11, 10, 50), 'warning');
  t.equal(levelAbove(51, 10, 50), 'critical');
  t.equal(levelAtOrBelow(2, 1, 0), null);
  t.equal(levelAtOrBelow(1, 1, 0), 'warning');
  t.equal(levelAtOrBelow(0, 1, 0), 'critical');
  const d = (s: string) => new Date(s);
  t.equal(expectedIntervalMs([d('2026-01-02T00:00:00Z'), d('2026-01-05T00:00:00Z'), d('2026-01-06T00:00:00Z')]), 3 * 86_400_000, 'the longest gap');
});

t.test('the scrubber hides webhook URLs, their paths and SMTP passwords', async (t) => {
  const scrub = secretScrubber(['https://hooks.slack.com/services/T1/B2/abcdefSECRET', 'smtp://user:pa%24%24word@mail:25', undefined]);
  t.equal(scrub('POST https://hooks.slack.com/services/T1/B2/abcdefSECRET failed'), 'POST [redacted] failed');
  t.equal(scrub('path services/T1/B2/abcdefSECRET'), 'path [redacted]');
  t.equal(scrub('auth pa$$word refused'), 'auth [redacted] refused');
});
