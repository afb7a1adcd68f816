import t from 'tap';
import { cronDstKind, describeTrigger, instantOfWallTime, jitterMs, nextOccurrences, planDue, type ScheduleTrigger } from '@wombat/core/schedules';

const at = (iso: string) => new Date(iso);
const iso = (ds: Date[]) => ds.map((d) => d.toISOString());
const def = (trigger: ScheduleTrigger, timezone: string) => ({ trigger, timezone });
const cron = (c: string): ScheduleTrigger => ({ kind: 'cron', cron: c });
const times = (...ts: string[]): ScheduleTrigger => ({ kind: 'times', times: ts });

t.test('Asia/Seoul defaults: 00:00 and 00:02 KST are 15:00 and 15:02 UTC the day before', async (t) => {
  const after = at('2026-11-22T05:00:00Z');
  t.same(iso(nextOccurrences(def(times('00:00'), 'Asia/Seoul'), after, 2)), ['2026-11-22T15:00:00.000Z', '2026-11-23T15:00:00.000Z']);
  t.same(iso(nextOccurrences(def(cron('2 0 * * *'), 'Asia/Seoul'), after, 1)), ['2026-11-22T15:02:00.000Z']);
  t.same(iso(nextOccurrences(def(cron('0 9 * * *'), 'UTC'), after, 1)), ['2026-11-22T09:00:00.000Z']);
});

t.test('a time in the spring-forward gap runs once, at the gap end (Europe/Berlin)', async (t) => {
  // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
  const after = at('2026-03-28T12:00:00Z');
  const expected = ['2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z'];
  t.same(iso(nextOccurrences(def(times('02:30'), 'Europe/Berlin'), after, 2)), expected);
  t.same(iso(nextOccurrences(def(cron('30 2 * * *'), 'Europe/Berlin'), after, 2)), expected);
});

t.test('a time in the fall-back fold runs once, at its first instant (Europe/Berlin)', async (t) => {
  // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens at 00:30 and 01:30 UTC.
  const after = at('2026-10-24T12:00:00Z');
  const expected = ['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z'];
  t.same(iso(nextOccurrences(def(times('02:30'), 'Europe/Berlin'), after, 2)), expected);
  t.same(iso(nextOccurrences(def(cron('30 2 * * *'), 'Europe/Berlin'), after, 2)), expected);
});

t.test('America/New_York gap and fold for times of day', async (t) => {
  // 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC); 2026-11-01 02:00 EDT -> 01:00 EST.
  t.same(iso(nextOccurrences(def(times('02:15'), 'America/New_York'), at('2026-03-08T00:00:00Z'), 1)), ['2026-03-08T07:00:00.000Z']);
  t.same(iso(nextOccurrences(def(times('01:30'), 'America/New_York'), at('2026-11-01T00:00:00Z'), 2)), [
    '2026-11-01T05:30:00.000Z',
    '2026-11-02T06:30:00.000Z',
  ]);
});

t.test('two times that a gap maps onto the same instant run once', async (t) => {
  const got = nextOccurrences(def(times('02:10', '02:40'), 'Europe/Berlin'), at('2026-03-29T00:00:00Z'), 2);
  t.same(iso(got), ['2026-03-29T01:00:00.000Z', '2026-03-30T00:10:00.000Z']);
});

const every = (e: string, seconds: number): ScheduleTrigger => ({ kind: 'every', every: e, everySeconds: seconds });

/*
 * The DST policy (services/scheduler-engine/README.md, "Time zones and DST"), one row per case: trigger, zone, after, the
 * occurrences that follow. Transitions: Berlin 03-29 gap 02:00-03:00, 10-25 fold 02:00-03:00;
 * New York 03-08 gap 02:00-03:00, 11-01 fold 01:00-02:00; Lord Howe (30-minute DST) 04-05 fold
 * 01:30-02:00, 10-04 gap 02:00-02:30; Santiago (at midnight) 04-05 00:00 back to 04-04 23:00,
 * 09-06 gap 00:00-01:00. All in 2026.
 */
const DST_TABLE: [string, ScheduleTrigger, string, string, string[]][] = [
  // Five cases: lists, ranges and steps without a wildcard are fixed times.
  ['list of hours, one in the gap', cron('30 2,14 * * *'), 'Europe/Berlin', '2026-03-28T22:00:00Z', ['2026-03-29T01:00:00Z', '2026-03-29T12:30:00Z']],
  ['list of minutes in the gap, merged at its end', cron('0,30 2 * * *'), 'America/New_York', '2026-03-08T04:00:00Z', ['2026-03-08T07:00:00Z', '2026-03-09T06:00:00Z']],
  ['list of hours, one in the fold', cron('0 2,3 * * *'), 'Europe/Berlin', '2026-10-24T22:00:00Z', ['2026-10-25T00:00:00Z', '2026-10-25T02:00:00Z', '2026-10-26T01:00:00Z']],
  ['list of minutes in the fold', cron('15,45 1 * * *'), 'America/New_York', '2026-11-01T03:00:00Z', ['2026-11-01T05:15:00Z', '2026-11-01T05:45:00Z', '2026-11-02T06:15:00Z']],
  ['range with a step in the 30-minute fold', cron('2-48/10 1 26 * 0'), 'Australia/Lord_Howe', '2026-04-04T14:00:00Z',
    ['2026-04-04T14:02:00Z', '2026-04-04T14:12:00Z', '2026-04-04T14:22:00Z', '2026-04-04T14:32:00Z', '2026-04-04T14:42:00Z', '2026-04-11T14:32:00Z']],
  // Interval patterns (a wildcard in second, minute or hour) follow the timeline, as Vixie cron does.
  ['step minutes fire in both passes of the fold', cron('*/15 1-3 * * *'), 'America/New_York', '2026-11-01T04:50:00Z',
    ['2026-11-01T05:00:00Z', '2026-11-01T05:15:00Z', '2026-11-01T05:30:00Z', '2026-11-01T05:45:00Z', '2026-11-01T06:00:00Z', '2026-11-01T06:15:00Z',
     '2026-11-01T06:30:00Z', '2026-11-01T06:45:00Z', '2026-11-01T07:00:00Z', '2026-11-01T07:15:00Z']],
  ['wildcard hours skip the gap', cron('*/30 * * * *'), 'America/New_York', '2026-03-08T06:15:00Z', ['2026-03-08T06:30:00Z', '2026-03-08T07:00:00Z', '2026-03-08T07:30:00Z']],
  ['wildcard hours in the 30-minute fold', cron('45 * * * *'), 'Australia/Lord_Howe', '2026-04-04T14:00:00Z', ['2026-04-04T14:45:00Z', '2026-04-04T15:15:00Z', '2026-04-04T16:15:00Z']],
  // Single values and times of day: gap end, first instant of the fold.
  ['Berlin times in the gap', times('02:30'), 'Europe/Berlin', '2026-03-28T12:00:00Z', ['2026-03-29T01:00:00Z', '2026-03-30T00:30:00Z']],
  ['Berlin cron in the gap', cron('30 2 * * *'), 'Europe/Berlin', '2026-03-28T12:00:00Z', ['2026-03-29T01:00:00Z', '2026-03-30T00:30:00Z']],
  ['Berlin times in the fold', times('02:30'), 'Europe/Berlin', '2026-10-24T12:00:00Z', ['2026-10-25T00:30:00Z', '2026-10-26T01:30:00Z']],
  ['Berlin cron in the fold', cron('30 2 * * *'), 'Europe/Berlin', '2026-10-24T12:00:00Z', ['2026-10-25T00:30:00Z', '2026-10-26T01:30:00Z']],
  ['New York times in the gap', times('02:15'), 'America/New_York', '2026-03-08T00:00:00Z', ['2026-03-08T07:00:00Z', '2026-03-09T06:15:00Z']],
  ['New York cron in the gap', cron('15 2 * * *'), 'America/New_York', '2026-03-08T00:00:00Z', ['2026-03-08T07:00:00Z', '2026-03-09T06:15:00Z']],
  ['New York times in the fold', times('01:30'), 'America/New_York', '2026-11-01T00:00:00Z', ['2026-11-01T05:30:00Z', '2026-11-02T06:30:00Z']],
  ['New York cron in the fold', cron('30 1 * * *'), 'America/New_York', '2026-11-01T00:00:00Z', ['2026-11-01T05:30:00Z', '2026-11-02T06:30:00Z']],
  ['Lord Howe times in the fold', times('01:45'), 'Australia/Lord_Howe', '2026-04-04T12:00:00Z', ['2026-04-04T14:45:00Z', '2026-04-05T15:15:00Z']],
  ['Lord Howe cron in the fold', cron('45 1 * * *'), 'Australia/Lord_Howe', '2026-04-04T12:00:00Z', ['2026-04-04T14:45:00Z', '2026-04-05T15:15:00Z']],
  ['Lord Howe times in the 30-minute gap', times('02:15'), 'Australia/Lord_Howe', '2026-10-03T12:00:00Z', ['2026-10-03T15:30:00Z', '2026-10-04T15:15:00Z']],
  ['Lord Howe cron in the 30-minute gap', cron('15 2 * * *'), 'Australia/Lord_Howe', '2026-10-03T12:00:00Z', ['2026-10-03T15:30:00Z', '2026-10-04T15:15:00Z']],
  ['Santiago midnight in the midnight gap runs at 01:00', cron('0 0 * * *'), 'America/Santiago', '2026-09-05T00:00:00Z', ['2026-09-05T04:00:00Z', '2026-09-06T04:00:00Z', '2026-09-07T03:00:00Z']],
  ['Santiago times in the midnight gap', times('00:30'), 'America/Santiago', '2026-09-05T12:00:00Z', ['2026-09-06T04:00:00Z', '2026-09-07T03:30:00Z']],
  ['Santiago cron in the fold before midnight', cron('30 23 * * *'), 'America/Santiago', '2026-04-04T12:00:00Z', ['2026-04-05T02:30:00Z', '2026-04-06T03:30:00Z']],
  ['Santiago times in the fold before midnight', times('23:30'), 'America/Santiago', '2026-04-04T12:00:00Z', ['2026-04-05T02:30:00Z', '2026-04-06T03:30:00Z']],
  // every is elapsed time: an hourly interval runs twice in the repeated hour, a daily one drifts an hour on the wall clock.
  ['every 1h through the fold', every('1h', 3600), 'Europe/Berlin', '2026-10-24T23:30:00Z', ['2026-10-25T00:00:00Z', '2026-10-25T01:00:00Z', '2026-10-25T02:00:00Z']],
  ['every 1d across the gap', every('1d', 86_400), 'Europe/Berlin', '2026-03-28T12:00:00Z', ['2026-03-28T23:00:00Z', '2026-03-29T23:00:00Z']],
];

t.test('one DST policy for every trigger kind (table)', async (t) => {
  for (const [label, trigger, zone, after, expected] of DST_TABLE) {
    const got = iso(nextOccurrences(def(trigger, zone), at(after), expected.length));
    t.same(got, expected.map((x) => new Date(x).toISOString()), `${label}: ${describeTrigger({ trigger })} in ${zone}`);
  }
});

t.test('a pattern is fixed-time unless its second, minute or hour has a wildcard', async (t) => {
  for (const p of ['30 2 * * *', '30 2,14 * * *', '0-59/10 1 * * *', '15,45 1-3 * * 1', '0 30 2 * * *', '5,35 30 2 * * *', '0 0 * * *']) t.equal(cronDstKind(p), 'fixed-time', p);
  for (const p of ['* 2 * * *', '*/15 1-3 * * *', '30 * * * *', '0 */2 * * *', '7,*/15 1 * * *', '? 2 * * *', '*/10 30 2 * * *', '* * * * * *']) t.equal(cronDstKind(p), 'interval', p);
});

t.test('fixed intervals are elapsed time from local midnight 2000-01-01, strictly after', async (t) => {
  const every5m = def({ kind: 'every', every: '5m', everySeconds: 300 }, 'UTC');
  t.same(iso(nextOccurrences(every5m, at('2026-01-01T00:05:00Z'), 2)), ['2026-01-01T00:10:00.000Z', '2026-01-01T00:15:00.000Z']);
  const daily = def({ kind: 'every', every: '1d', everySeconds: 86400 }, 'Asia/Seoul');
  t.same(iso(nextOccurrences(daily, at('2026-11-22T05:00:00Z'), 1)), ['2026-11-22T15:00:00.000Z']);
  // Across a DST change a fixed interval keeps its length: 1h stays 3600 s.
  const hourly = def({ kind: 'every', every: '1h', everySeconds: 3600 }, 'Europe/Berlin');
  const [a, b] = nextOccurrences(hourly, at('2026-03-29T00:30:00Z'), 2);
  t.equal(b!.getTime() - a!.getTime(), 3_600_000);
});

t.test('seconds-level cron is strictly after a sub-second instant', async (t) => {
  t.same(iso(nextOccurrences(def(cron('* * * * * *'), 'UTC'), at('2026-01-01T00:00:00.400Z'), 2)), [
    '2026-01-01T00:00:01.000Z',
    '2026-01-01T00:00:02.000Z',
  ]);
  t.same(iso(nextOccurrences(def(cron('*/2 * * * * *'), 'UTC'), at('2026-01-01T00:00:02Z'), 1)), ['2026-01-01T00:00:04.000Z']);
});

t.test('wall times map to instants with the gap end and the first of a fold', async (t) => {
  const w = { year: 2026, month: 3, day: 29, hour: 2, minute: 30, second: 0 };
  t.equal(new Date(instantOfWallTime(w, 'Europe/Berlin')).toISOString(), '2026-03-29T01:00:00.000Z');
  t.equal(new Date(instantOfWallTime({ ...w, month: 10, day: 25 }, 'Europe/Berlin')).toISOString(), '2026-10-25T00:30:00.000Z');
});

t.test('describes triggers for status pages', async (t) => {
  t.equal(describeTrigger({ trigger: cron('0 9 * * *') }), 'cron 0 9 * * *');
  t.equal(describeTrigger({ trigger: { kind: 'every', every: '5m', everySeconds: 300 } }), 'every 5m');
  t.equal(describeTrigger({ trigger: times('09:00', '18:00') }), 'at 09:00, 18:00');
});

t.test('jitter is deterministic, bounded, and never reaches the next occurrence', async (t) => {
  const occ = at('2026-01-01T00:00:00Z');
  const a = jitterMs(7, 60, occ, at('2026-01-01T00:00:10Z'));
  t.equal(a, jitterMs(7, 60, occ, at('2026-01-01T00:00:10Z')));
  t.ok(a >= 0 && a < 10_000, `jitter ${a} stays before the next occurrence`);
  t.equal(jitterMs(7, 0, occ, undefined), 0);
  for (let id = 1; id < 200; id++) t.ok(jitterMs(id, 5, occ, undefined) < 5000);
});

t.test('planDue: on-time occurrences publish; late ones follow skip, once and all', async (t) => {
  const now = Date.parse('2026-01-01T01:00:00Z');
  const due = [50, 40, 30, 20, 10, 0.5].map((minAgo) => {
    const d = new Date(now - minAgo * 60_000);
    return { at: d, fireAt: d };
  });
  const policy = { catchupWindowSeconds: 45 * 60, catchupMax: 2 };
  const summary = (missed: 'skip' | 'once' | 'all', list = due) =>
    planDue(list, now, 5_000, { ...policy, missed }).map((p) => (p.action === 'publish' ? (p.late ? 'late' : 'pub') : 'miss'));
  // 50 min ago is outside the 45 min window in every policy; 30 s ago is late too (grace 5 s).
  t.same(summary('skip'), ['miss', 'miss', 'miss', 'miss', 'miss', 'miss']);
  t.same(summary('once'), ['miss', 'miss', 'miss', 'miss', 'miss', 'late']);
  t.same(summary('all'), ['miss', 'miss', 'miss', 'miss', 'late', 'late']);
  const onTime = [...due.slice(0, 5), { at: new Date(now - 1000), fireAt: new Date(now - 1000) }];
  t.same(summary('once', onTime), ['miss', 'miss', 'miss', 'miss', 'miss', 'pub']);
  t.same(summary('skip', onTime), ['miss', 'miss', 'miss', 'miss', 'miss', 'pub']);
  const reasons = planDue(due, now, 5_000, { ...policy, missed: 'all' }).flatMap((p) => (p.action === 'missed' ? [p.reason] : []));
  t.match(reasons[0], /catch-up window/);
  t.match(reasons[1], /cap of 2/);
});
