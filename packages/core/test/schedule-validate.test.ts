import t from 'tap';
import Value from 'typebox/value';
import { checkScheduleDefinition, mergeSchedulePatch, ScheduleInputSchema, SchedulePatchSchema, validateScheduleInput, type ScheduleDefinition } from '@wombat/core/schedules';

const validOf = (input: unknown): ScheduleDefinition => {
  const r = validateScheduleInput(input);
  if (!r.ok) throw new Error(r.problems.join('; '));
  return r.value;
};

const problemsOf = (input: unknown, partial = false) => {
  const r = validateScheduleInput(input, { partial });
  return r.ok ? [] : r.problems;
};

t.test('normalises a full definition with defaults', async (t) => {
  const r = validateScheduleInput({ name: ' nightly ', job: 'canary', times: ['18:00', '09:00'] }, { defaultTimezone: 'Asia/Seoul' });
  if (!r.ok) throw new Error(r.problems.join('; '));
  t.same(r.value.trigger, { kind: 'times', times: ['09:00', '18:00'] });
  t.equal(r.value.name, 'nightly');
  t.equal(r.value.timezone, 'Asia/Seoul');
  t.equal(r.value.overlap, 'skip');
  t.equal(r.value.missed, 'once');
  t.equal(r.value.status, 'active');
  t.equal(r.value.timeoutSeconds, null);
  t.same(r.value.params, {});
});

t.test('parses intervals from one second to one month', async (t) => {
  const every = (e: string) => validateScheduleInput({ name: 'x', job: 'canary', every: e });
  const r = every('90s');
  t.ok(r.ok && r.value.trigger.kind === 'every' && r.value.trigger.everySeconds === 90);
  t.ok(every('1mo').ok);
  t.match(problemsOf({ name: 'x', job: 'canary', every: '0s' }), [/every "0s" must be .* from 1s to 1mo/]);
  t.match(problemsOf({ name: 'x', job: 'canary', every: '2mo' }), [/from 1s to 1mo/]);
  t.match(problemsOf({ name: 'x', job: 'canary', every: 'often' }), [/every/]);
});

t.test('rejects bad cron, unknown zone, unknown job and unknown fields, naming each', async (t) => {
  const p = problemsOf({ name: 'x', job: 'nope', cron: '61 * * * *', timezone: 'Mars/Olympus', colour: 'red' });
  t.match(p.join('\n'), /colour is not a schedule field/);
  t.match(p.join('\n'), /job must be one of/);
  t.match(p.join('\n'), /timezone "Mars\/Olympus" is not an IANA time zone/);
  t.match(p.join('\n'), /cron "61 \* \* \* \*" is not a valid cron pattern/);
  t.match(problemsOf({ name: 'x', job: 'canary', cron: '* * *' }), [/has 3 fields; give 5/]);
  t.match(problemsOf({ name: 'x', job: 'canary', cron: '0 0 31 2 *' }), [/never fires/]);
  t.match(problemsOf({ name: 'x', job: 'canary', cron: '* * * * *', every: '5m' }), [/exactly one of cron, every or times/]);
  t.match(problemsOf({ name: 'x', job: 'canary' }), [/one of cron, every or times is required/]);
  t.match(problemsOf({ job: 'canary', times: ['25:00'] }).join('\n'), /name is required[\s\S]*times "25:00" must be HH:MM/);
  t.match(problemsOf('cron'), [/must be a JSON object/]);
});

t.test('checks params against the job', async (t) => {
  t.match(problemsOf({ name: 'x', job: 'fetch-candles', every: '1h', params: { exchange: 'upbit' } }).join('\n'), /params/);
  const ok = validateScheduleInput({ name: 'x', job: 'fetch-candles', every: '1h', params: { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H' } });
  t.ok(ok.ok);
  t.match(problemsOf({ name: 'x', job: 'canary', every: '1h', catchup_max: 0, jitter_seconds: -1, max_retries: 'a' }).join('\n'), /catchup_max must be an integer from 1[\s\S]*jitter_seconds[\s\S]*max_retries/);
});

t.test('a partial input validates only the fields given', async (t) => {
  const r = validateScheduleInput({ every: '10m', status: 'paused', paused_reason: 'exchange maintenance' }, { partial: true });
  if (!r.ok) throw new Error(r.problems.join('; '));
  t.same(Object.keys(r.value).sort(), ['pausedReason', 'status', 'trigger']);
  t.match(problemsOf({ overlap: 'sometimes' }, true), [/overlap must be one of allow, skip, queue-one/]);
  t.same(problemsOf({}, true), []);
});

t.test('merging a patch re-checks params against a changed job', async (t) => {
  const base = validateScheduleInput({ name: 'x', job: 'canary', every: '1h' });
  if (!base.ok) throw new Error('base');
  const current: ScheduleDefinition = base.value;
  const bad = mergeSchedulePatch(current, { job: 'fetch-candles' });
  t.notOk(bad.ok);
  t.match(bad.ok ? '' : bad.problems.join('\n'), /for job fetch-candles/);
  const good = mergeSchedulePatch(current, { status: 'paused', pausedReason: 'why' });
  t.ok(good.ok && good.value.status === 'paused' && good.value.pausedReason === 'why');
});

t.test('the engine checks stored rows with the same schema as the api and the CLI', async (t) => {
  const good = validOf({ name: 'nightly', job: 'collect-symbols', cron: '0 3 * * *' });
  t.same(checkScheduleDefinition(good), []);
  // Rows written by hand in SQL: out-of-range numbers, a bad zone, params that do not fit the job.
  const bad = checkScheduleDefinition({ ...good, catchupMax: 0, timezone: 'Mars/Olympus', params: { colour: 'red' } });
  t.match(bad.join('\n'), /catchup_max must be an integer from 1 to 1000/);
  t.match(bad.join('\n'), /timezone "Mars\/Olympus" is not an IANA time zone/);
  t.match(bad.join('\n'), /colour/);
  t.match(checkScheduleDefinition({ ...good, job: 'mine-bitcoin' as never }), [/job must be one of/]);
});

t.test('the shared schema is a TypeBox schema: required fields and closed objects', async (t) => {
  t.same([...ScheduleInputSchema.required].sort(), ['job', 'name']);
  t.equal((ScheduleInputSchema as { additionalProperties?: boolean }).additionalProperties, false);
  t.notOk((SchedulePatchSchema as { required?: string[] }).required?.length, 'a patch requires nothing');
  t.equal(Value.Check(ScheduleInputSchema, { name: 'x', job: 'canary', every: '5m' }), true);
  t.equal(Value.Check(ScheduleInputSchema, { name: 'x', job: 'canary', every: '5m', extra: 1 }), false);
});

t.test('a timeout is at most a day: pg-boss expires no job later', async (t) => {
  t.same(problemsOf({ name: 'x', job: 'backtest', every: '1d', timeout_seconds: 86_400, params: { strategy: 'ma-crossover', exchange: 'upbit', symbols: ['KRW-BTC'], from: '2026-01-01T00:00:00Z', to: '2026-02-01T00:00:00Z' } }), []);
  t.match(problemsOf({ name: 'x', job: 'canary', every: '1d', timeout_seconds: 86_401 }), [/timeout_seconds must be an integer from 1 to 86400/]);
});
