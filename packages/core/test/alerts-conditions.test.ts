import t from 'tap';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { loadConfig } from '@wombat/core/platform';
import { alertFields, createAlerting, DEAD_LETTER_GROUP_CAP, deadLetterGroups, type AlertingOptions } from '@wombat/core/alerts';
import { startFakeHook } from '@wombat/core/alerts-fakes';
import { createTestDatabase, planReads } from '@wombat/core/testing';

const tdb = await createTestDatabase(t);

function options(env: Record<string, string> = {}): AlertingOptions {
  // The test server is shared with other test files: its connections are not this test's (database-health.test.ts tests them).
  return { ...loadConfig(alertFields, { ALERT_DAILY_REPORT_TIME: 'off', ALERT_RESOLVE_AFTER_MS: '0', ALERT_DB_CONNECTIONS_WARNING_PCT: '100', ALERT_DB_CONNECTIONS_CRITICAL_PCT: '100', ...env }), timezone: 'UTC' };
}

async function reset() {
  await sql`truncate wombat.alerts, wombat.alert_deliveries, wombat.alert_counters, wombat.runs, wombat.engines, wombat.workers`.execute(tdb.db);
  await sql`delete from wombat.schedules`.execute(tdb.db);
  await sql`insert into wombat.engines (id, host, pid, version, heartbeat_interval_ms, enabled) values (gen_random_uuid(), 'test', 1, 'test', 3600000, true)`.execute(tdb.db);
}

async function open() {
  const r = await sql<{ key: string; kind: string; severity: string; subject: string; message: string }>`
    select key, kind, severity, subject, message from wombat.alerts where state = 'open' order by key`.execute(tdb.db);
  return r.rows;
}

async function schedule(name: string, extra: { builtIn?: boolean; factor?: number | null; updatedHoursAgo?: number } = {}): Promise<number> {
  const r = await sql<{ id: number }>`
    insert into wombat.schedules (name, job, kind, every, every_seconds, built_in, alert_stale_factor)
    values (${name}, 'canary', 'every', '1h', 3600, ${extra.builtIn ?? false}, ${extra.factor ?? null}) returning id`.execute(tdb.db);
  const id = r.rows[0]!.id;
  if (extra.updatedHoursAgo) {
    // The version trigger sets updated_at on definition edits only; this is test set-up.
    await sql`alter table wombat.schedules disable trigger schedules_bump_version`.execute(tdb.db);
    await sql`update wombat.schedules set updated_at = now() - make_interval(hours => ${extra.updatedHoursAgo}), created_at = now() - make_interval(hours => ${extra.updatedHoursAgo}) where id = ${id}`.execute(tdb.db);
    await sql`alter table wombat.schedules enable trigger schedules_bump_version`.execute(tdb.db);
  }
  return id;
}

async function occurrence(scheduleId: number, minutesAgo: number, state: string, extra: { finishedMinutesAgo?: number } = {}) {
  await sql`
    insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, params, started_at, finished_at, created_at)
    values (${randomUUID()}, 'canary', 'schedule', ${scheduleId}, now() - make_interval(mins => ${minutesAgo}), ${state}, '{}',
            case when ${state} in ('completed', 'failed') then now() - make_interval(mins => ${minutesAgo}) end,
            now() - make_interval(mins => ${extra.finishedMinutesAgo ?? minutesAgo}), now() - make_interval(mins => ${minutesAgo}))`.execute(tdb.db);
}

t.test('missed occurrences: one alert per schedule until a later run completes', async (t) => {
  await reset();
  const id = await schedule('hourly');
  await occurrence(id, 180, 'completed');
  await occurrence(id, 120, 'missed');
  await occurrence(id, 60, 'missed');
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options() });
  await alerting.evaluate();
  t.match(await open(), [{ key: `occurrence_missed:${id}`, severity: 'warning', subject: 'schedule hourly missed 2 occurrence(s)', message: /were missed .* none has completed since/s }]);
  await occurrence(id, 1, 'completed');
  t.match(await alerting.evaluate(), { resolved: 1 });
  t.same(await open(), []);
});

t.test('overlap skips: an alert once the last N occurrences were all skipped', async (t) => {
  await reset();
  const id = await schedule('busy');
  await occurrence(id, 50, 'running');
  await occurrence(id, 40, 'skipped');
  await occurrence(id, 30, 'skipped');
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ ALERT_OVERLAP_SKIPS: '3' }) });
  await alerting.evaluate();
  t.same(await open(), [], 'two in a row is not yet three');
  await occurrence(id, 20, 'skipped');
  await alerting.evaluate();
  t.match(await open(), [{ key: `overlap_skipped:${id}`, subject: 'schedule busy skipped 3 times in a row' }]);
  await occurrence(id, 10, 'completed');
  await alerting.evaluate();
  t.same(await open(), [], 'an occurrence that ran ends the streak');
});

t.test('a schedule not succeeded for longer than interval x factor; on by default for built-ins only', async (t) => {
  await reset();
  const builtIn = await schedule('built-in', { builtIn: true, updatedHoursAgo: 5 });
  const own = await schedule('own', { updatedHoursAgo: 5 });
  const ownOn = await schedule('own-on', { factor: 3, updatedHoursAgo: 5 });
  const fresh = await schedule('fresh', { builtIn: true, updatedHoursAgo: 5 });
  await occurrence(fresh, 30, 'completed');
  const off = await schedule('off', { builtIn: true, factor: 0, updatedHoursAgo: 5 });
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ ALERT_STALE_FACTOR: '1.5' }) });
  await alerting.evaluate();
  const keys = (await open()).map((a) => a.key);
  t.same(keys.sort(), [`schedule_stale:${builtIn}`, `schedule_stale:${ownOn}`].sort());
  t.notOk(keys.includes(`schedule_stale:${own}`) || keys.includes(`schedule_stale:${off}`) || keys.includes(`schedule_stale:${fresh}`));
  t.match((await open()).find((a) => a.key === `schedule_stale:${builtIn}`), { severity: 'critical', subject: /has not succeeded for 5 h/, message: /expected every 1 h and alerts after 1.5 x that/ });
});

t.test('no live scheduling engine, and too few live workers per queue', async (t) => {
  await reset();
  await sql`update wombat.engines set enabled = false`.execute(tdb.db);
  await sql`
    insert into wombat.workers (id, host, pid, version, queues, concurrency, started_at, last_beat_at, heartbeat_interval_ms, runs_in_hand, rss_bytes) values
      (gen_random_uuid(), 'a', 1, 't', '{canary,fetch-candles}', 1, now(), now(), 60000, 0, 1),
      (gen_random_uuid(), 'b', 2, 't', '{canary}', 1, now(), now(), 60000, 0, 1),
      (gen_random_uuid(), 'c', 3, 't', '{backtest}', 1, now(), now() - interval '1 hour', 1000, 0, 1)`.execute(tdb.db);
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options() });
  await alerting.evaluate();
  const alerts = await open();
  t.match(alerts.find((a) => a.key === 'no_engine'), { severity: 'critical', message: /1 engine\(s\) alive, none with ENABLE_SCHEDULER=true/ });
  t.match(alerts.find((a) => a.key === 'workers_low'), { severity: 'critical', message: /backtest: 0 \(critical\), fetch-candles: 1 \(warning\)/ });
  t.notMatch(alerts.find((a) => a.key === 'workers_low')!.message, /canary/, 'two live workers for canary is normal');
});

t.test('queue length: counted up to one past the critical level; a longer queue reads "more than" it', async (t) => {
  await reset();
  await sql`delete from pgboss.job`.execute(tdb.db);
  const send = (queue: string, n: number, ago = '0 seconds') =>
    sql`insert into pgboss.job (id, name, data, created_on) select gen_random_uuid(), ${queue}, '{}', now() - ${ago}::interval from generate_series(1, ${n})`.execute(tdb.db);
  await send('canary', 500, '1 minute');
  await send('canary', 1);
  await send('backtest', 4);
  await send('fetch-candles', 2);
  // Not waiting: one to start later, and a running one.
  await sql`insert into pgboss.job (id, name, data, start_after) values (gen_random_uuid(), 'fetch-candles', '{}', now() + interval '1 hour')`.execute(tdb.db);
  await sql`insert into pgboss.job (id, name, data, state, started_on) values (gen_random_uuid(), 'fetch-candles', '{}', 'active', now())`.execute(tdb.db);
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ ALERT_QUEUE_LENGTH_WARNING: '3', ALERT_QUEUE_LENGTH_CRITICAL: '10' }) });
  await alerting.evaluate();
  const alerts = (await open()).filter((a) => a.kind === 'queue_length');
  t.same(alerts.map((a) => [a.key, a.severity, a.subject]), [
    ['queue_length:backtest', 'warning', 'queue backtest has 4 jobs waiting'],
    ['queue_length:canary', 'critical', 'queue canary has more than 10 jobs waiting'],
  ]);
  t.match(alerts[1]!.message, /the next to start waits since \S+/);
  await sql`delete from pgboss.job`.execute(tdb.db);
});

t.test('thresholds: failure rate, average run time and dead letters, warning then critical', async (t) => {
  await reset();
  const run = async (state: string, seconds: number) =>
    sql`insert into wombat.runs (id, job, trigger, state, params, started_at, finished_at)
        values (${randomUUID()}, 'fetch-candles', 'task', ${state}, '{}', now() - make_interval(secs => ${seconds}), now())`.execute(tdb.db);
  for (let i = 0; i < 18; i++) await run('completed', 400);
  for (let i = 0; i < 2; i++) await run('failed', 400);
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ ALERT_DEAD_LETTERS_WARNING: '1', ALERT_DEAD_LETTERS_CRITICAL: '5' }) });
  await alerting.evaluate();
  let alerts = await open();
  t.match(alerts.find((a) => a.key === 'failure_rate'), { severity: 'warning', subject: '10.0% of runs failed in the last 60 min' });
  t.match(alerts.find((a) => a.key === 'run_time:fetch-candles'), { severity: 'warning', subject: 'fetch-candles runs take 400 s on average' });
  t.match(alerts.find((a) => a.key === 'dead_letters'), { severity: 'warning', subject: '2 dead letters' });
  for (let i = 0; i < 4; i++) await run('failed', 2000);
  await alerting.evaluate();
  alerts = await open();
  t.match(alerts.find((a) => a.key === 'failure_rate'), { severity: 'critical' });
  t.match(alerts.find((a) => a.key === 'run_time:fetch-candles'), { severity: 'critical' });
  t.match(alerts.find((a) => a.key === 'dead_letters'), { severity: 'critical', subject: '6 dead letters' });
  const rows = await sql<{ n: number }>`select count(*)::int as n from wombat.alerts where key = 'dead_letters'`.execute(tdb.db);
  t.equal(rows.rows[0]!.n, 1, 'escalation keeps one alert');
});

/** Messages queued for channels, per alert kind and event. */
async function queued(kind: string): Promise<Record<string, number>> {
  const r = await sql<{ event: string; n: number }>`
    select d.payload->>'event' as event, count(*)::int as n from wombat.alert_deliveries d join wombat.alerts a on a.id = d.alert_id
    where a.kind = ${kind} group by 1`.execute(tdb.db);
  return Object.fromEntries(r.rows.map((x) => [x.event, x.n]));
}

async function failChildren(n: number, code = 'exchange_unavailable') {
  await sql`insert into wombat.runs (id, job, trigger, state, params, attempts, started_at, finished_at, error)
            select gen_random_uuid(), 'fetch-candles', 'fanout', 'failed', '{}', 5, now() - interval '2 hours', now() - interval '2 hours' + make_interval(secs => i),
                   jsonb_build_object('code', ${code}::text, 'message', 'upbit answered 503')
            from generate_series(1, ${n}) i`.execute(tdb.db);
}

t.test('a fan-out whose hundreds of children fail is one grouped alert, with the count, resolved only when none is a dead letter', async (t) => {
  await reset();
  const slack = await startFakeHook(t);
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ SLACK_WEBHOOK_URL: slack.url, ALERT_DEAD_LETTERS_WARNING: '100000', ALERT_DEAD_LETTERS_CRITICAL: '100000' }) });
  await failChildren(600);
  t.match(await alerting.evaluate(), { opened: 1 });
  const key = 'run_failed:job:fetch-candles:exchange_unavailable';
  let alerts = (await open()).filter((a) => a.kind === 'run_failed');
  t.match(alerts, [{ key, severity: 'critical', subject: '600 fetch-candles runs failed for good (fanout runs of no schedule, exchange_unavailable)', message: /600 runs failed for good with exchange_unavailable.*upbit answered 503.*and 595 more/s }]);
  const details = async () => (await sql<{ details: { count: number; run_ids: string[] } }>`select details from wombat.alerts where key = ${key}`.execute(tdb.db)).rows[0]!.details;
  t.match(await details(), { count: 600 });
  t.equal((await details()).run_ids.length, 5, 'a few ids, not all');

  // The case that sent 100 false RESOLVED messages: more failures than the old query's 500.
  await failChildren(100);
  t.match(await alerting.evaluate(), { opened: 0, resolved: 0 });
  alerts = (await open()).filter((a) => a.kind === 'run_failed');
  t.equal(alerts.length, 1, 'still one alert');
  t.match(await details(), { count: 700 });
  t.same(await queued('run_failed'), { opened: 1 }, 'one message, and no RESOLVED while runs are dead letters');

  await sql`update wombat.runs set requeued_as = gen_random_uuid() where id in (select id from wombat.runs where state = 'failed' order by finished_at limit 699)`.execute(tdb.db);
  t.match(await alerting.evaluate(), { resolved: 0 });
  t.match(await details(), { count: 1 });
  await sql`update wombat.runs set requeued_as = gen_random_uuid() where state = 'failed' and requeued_as is null`.execute(tdb.db);
  t.match(await alerting.evaluate(), { resolved: 1 });
  t.same(await queued('run_failed'), { opened: 1, resolved: 1 }, 'RESOLVED once the last dead letter is requeued');
});

t.test('the failed-runs round reads a probe per group and a capped count, however many dead letters there are', async (t) => {
  await reset();
  const slack = await startFakeHook(t);
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ SLACK_WEBHOOK_URL: slack.url, ALERT_DEAD_LETTERS_WARNING: '100000', ALERT_DEAD_LETTERS_CRITICAL: '100000' }) });
  const reads = async () => planReads(tdb.db, deadLetterGroups(24), 'runs');
  await failChildren(3, 'timeout');
  await failChildren(40, 'exchange_unavailable');
  await sql`analyze wombat.runs`.execute(tdb.db);
  const small = await reads();
  await failChildren(20_000, 'exchange_unavailable');
  await sql`analyze wombat.runs`.execute(tdb.db);
  const large = await reads();
  t.ok(large.rows <= small.rows + DEAD_LETTER_GROUP_CAP + 1, `rows read: ${small.rows} with 43 dead letters, ${large.rows} with 20,043`);
  t.ok(large.indexes.length > 0 && large.indexes.every((i) => i === 'runs_dead_letter_groups'), large.indexes.join(', '));

  await alerting.evaluate();
  t.equal((await open()).filter((a) => a.kind === 'run_failed').length, 2, 'one alert per group');
  const big = (await open()).find((a) => a.key === 'run_failed:job:fetch-candles:exchange_unavailable');
  t.match(big, { subject: `more than ${DEAD_LETTER_GROUP_CAP} fetch-candles runs failed for good (fanout runs of no schedule, exchange_unavailable)`, message: /and more\n/ });
  const { rows: [d] } = await sql<{ details: Record<string, unknown> }>`select details from wombat.alerts where key = 'run_failed:job:fetch-candles:exchange_unavailable'`.execute(tdb.db);
  t.match(d!.details, { count: DEAD_LETTER_GROUP_CAP, count_is_more_than: DEAD_LETTER_GROUP_CAP });
  const { rows: [span] } = await sql<{ first: Date; last: Date }>`
    select min(finished_at) as first, max(finished_at) as last from wombat.runs where error->>'code' = 'exchange_unavailable'`.execute(tdb.db);
  t.match(d!.details, { first_failed_at: span!.first.toISOString(), last_failed_at: span!.last.toISOString() }, 'the span covers every dead letter of the group');
  t.match((await open()).find((a) => a.key === 'run_failed:job:fetch-candles:timeout'), { subject: '3 fetch-candles runs failed for good (fanout runs of no schedule, timeout)' });
});

t.test('failed runs group per schedule and error code; a group opened before stays open while its runs are dead letters', async (t) => {
  await reset();
  const a = await schedule('a');
  const b = await schedule('b');
  const fail = (scheduleId: number, code: string, hoursAgo: number) =>
    sql`insert into wombat.runs (id, job, trigger, schedule_id, state, params, attempts, started_at, finished_at, error)
        values (gen_random_uuid(), 'canary', 'schedule', ${scheduleId}, 'failed', '{}', 1, now() - make_interval(hours => ${hoursAgo}), now() - make_interval(hours => ${hoursAgo}),
                jsonb_build_object('code', ${code}::text, 'message', 'boom'))`.execute(tdb.db);
  await fail(a, 'timeout', 1);
  await fail(a, 'timeout', 1);
  await fail(a, 'worker_lost', 1);
  await fail(b, 'timeout', 1);
  await fail(b, 'old', 48);
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ ALERT_LOOKBACK_HOURS: '24', ALERT_DEAD_LETTERS_WARNING: '1000', ALERT_DEAD_LETTERS_CRITICAL: '1000' }) });
  await alerting.evaluate();
  const keys = (await open()).filter((x) => x.kind === 'run_failed' || x.kind === 'run_lost').map((x) => x.key);
  t.same(keys.sort(), [`run_failed:schedule:${a}:timeout`, `run_failed:schedule:${b}:timeout`, `run_lost:schedule:${a}:worker_lost`].sort(), 'a group older than the look-back does not open');
  // Runs age past the look-back: the open groups stay open while their runs are dead letters.
  await sql`update wombat.runs set finished_at = finished_at - interval '3 days'`.execute(tdb.db);
  t.match(await alerting.evaluate(), { resolved: 0 });
  t.equal((await open()).filter((x) => x.kind === 'run_failed' || x.kind === 'run_lost').length, 3);
});

t.test('an alert opened per run before grouping stays open while its run is a dead letter, then resolves', async (t) => {
  await reset();
  const runId = randomUUID();
  await sql`insert into wombat.runs (id, job, trigger, state, params, attempts, started_at, finished_at)
            values (${runId}, 'canary', 'task', 'failed', '{}', 1, now() - interval '3 days', now() - interval '3 days')`.execute(tdb.db);
  await sql`insert into wombat.alerts (key, kind, severity, state, subject, message, details)
            values (${`run_failed:${runId}`}, 'run_failed', 'warning', 'open', 'canary run failed for good (task run)', 'old message', '{}')`.execute(tdb.db);
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ ALERT_DEAD_LETTERS_WARNING: '100', ALERT_DEAD_LETTERS_CRITICAL: '100' }) });
  t.match(await alerting.evaluate(), { resolved: 0 });
  t.match(await open(), [{ key: `run_failed:${runId}`, message: 'old message' }], 'kept as it was, not resolved');
  await sql`update wombat.runs set requeued_as = gen_random_uuid() where id = ${runId}`.execute(tdb.db);
  t.match(await alerting.evaluate(), { resolved: 1 });
  t.same(await open(), []);
});

t.test('openings and resolutions of run alerts are rate-limited alike: ALERT_RUN_BURST messages, then one summary', async (t) => {
  await reset();
  const slack = await startFakeHook(t);
  for (let i = 0; i < 8; i++) {
    const id = await schedule(`s${i}`);
    await sql`insert into wombat.runs (id, job, trigger, schedule_id, state, params, attempts, started_at, finished_at)
              values (${randomUUID()}, 'fetch-candles', 'schedule', ${id}, 'failed', '{}', 5, now(), now())`.execute(tdb.db);
  }
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ SLACK_WEBHOOK_URL: slack.url, ALERT_RUN_BURST: '3', ALERT_DEAD_LETTERS_WARNING: '100', ALERT_DEAD_LETTERS_CRITICAL: '100' }) });
  t.match(await alerting.evaluate(), { opened: 8 });
  await alerting.deliver('slack');
  let texts = slack.received.map((m) => (m as { text: string }).text);
  t.equal(texts.length, 4);
  t.equal(texts.filter((x) => /fetch-candles run failed for good/.test(x)).length, 3);
  t.match(texts[3], /CRITICAL: 5 more runs failed for good or were lost/);
  t.match(texts[3], /fetch-candles 5/);
  t.equal((await open()).filter((a) => a.kind === 'run_failed').length, 8, 'each schedule has its alert');

  await sql`update wombat.runs set requeued_as = gen_random_uuid() where state = 'failed'`.execute(tdb.db);
  t.match(await alerting.evaluate(), { resolved: 8 });
  await alerting.deliver('slack');
  texts = slack.received.map((m) => (m as { text: string }).text).slice(4);
  t.equal(texts.length, 4, 'three RESOLVED messages and one summary, not eight');
  t.match(texts[3], /5 more run alerts cleared/);
  t.equal((await open()).filter((a) => a.kind === 'run_failed').length, 0, 'every alert resolved');
});

t.test('an evaluator that finds the lock taken does nothing', async (t) => {
  await reset();
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options() });
  const got = await tdb.db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('wombat.alerts'))`.execute(trx);
    return alerting.evaluate();
  });
  t.equal(got, null);
});

t.test('the daily report: yesterday by job, lateness, candles per exchange, dead letters, alerts; once a day', async (t) => {
  await reset();
  const slack = await startFakeHook(t);
  const yesterday = sql`date_trunc('day', now()) - interval '12 hours'`;
  const add = (job: string, state: string, latenessS: number | null, result: object | null = null) =>
    sql`insert into wombat.runs (id, job, trigger, state, params, scheduled_for, started_at, finished_at, result, created_at)
        values (${randomUUID()}, ${job}, 'schedule', ${state}, '{}', ${yesterday},
                ${latenessS === null ? null : sql`${yesterday} + make_interval(secs => ${latenessS})`}, ${yesterday} + interval '1 minute',
                ${result === null ? null : JSON.stringify(result)}::text::jsonb, ${yesterday})`.execute(tdb.db);
  for (let i = 0; i < 99; i++) await add('canary', 'completed', 0.01);
  await add('canary', 'completed', 3);
  await add('canary', 'failed', 0.01);
  await add('canary', 'missed', null);
  await add('canary', 'skipped', null);
  await add('fetch-candles', 'completed', 0.02, { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D', fetched: 200, written: 120 });
  await add('fetch-candles', 'completed', 0.02, { exchange: 'upbit', symbol: 'KRW-ETH', timeframe: '1D', fetched: 200, written: 80 });
  await add('fetch-candles', 'completed', 0.02, { exchange: 'kis', symbol: '005930', timeframe: '1D', fetched: 30, written: 30 });
  await sql`insert into wombat.alerts (key, kind, severity, state, subject, message, opened_at, resolved_at) values ('x', 'queue_length', 'warning', 'resolved', 's', 'm', ${yesterday}, ${yesterday})`.execute(tdb.db);
  const alerting = createAlerting({
    db: tdb.db,
    log: tdb.log,
    options: options({ ALERT_DAILY_REPORT_TIME: '00:00', SLACK_WEBHOOK_URL: slack.url, ALERT_STALE_FACTOR: '0' }),
  });
  t.match(await alerting.evaluate(), { report: true });
  t.match(await alerting.evaluate(), { report: false }, 'once a day');
  await alerting.deliver('slack');
  const texts = slack.received.map((m) => (m as { text: string }).text);
  const report = texts.find((x) => x.includes('daily report'))!;
  t.ok(report, 'the report went to Slack');
  t.match(report, /canary: 100 \/ 1 \/ 1 \/ 1/);
  t.match(report, /fetch-candles: 3 \/ 0 \/ 0 \/ 0/);
  t.match(report, /p50 0\.01 s, p99 [0-9.]+ s \(104 runs\)/);
  t.match(report, /Candles collected: kis 30, upbit 200/);
  t.match(report, /Dead letters: 1 now, 1 new that day/);
  t.match(report, /Alerts raised: queue_length \(warning\) 1/);
  const row = await sql<{ state: string; kind: string }>`select state, kind from wombat.alerts where kind = 'daily_report'`.execute(tdb.db);
  t.same(row.rows, [{ state: 'resolved', kind: 'daily_report' }], 'recorded, never open');
});
