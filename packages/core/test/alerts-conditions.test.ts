import t from 'tap';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { loadConfig } from '@wombat/core';
import { alertFields, createAlerting, type AlertingOptions } from '@wombat/core/alerts';
import { startFakeHook } from '@wombat/core/alerts-fakes';
import { createTestDatabase } from '@wombat/core/testing';

const tdb = await createTestDatabase(t);

function options(env: Record<string, string> = {}): AlertingOptions {
  return { ...loadConfig(alertFields, { ALERT_DAILY_REPORT_TIME: 'off', ALERT_RESOLVE_AFTER_MS: '0', ...env }), timezone: 'UTC' };
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

t.test('a storm of failed runs: a message per run up to ALERT_RUN_BURST, then one summary', async (t) => {
  await reset();
  const slack = await startFakeHook(t);
  for (let i = 0; i < 8; i++) {
    await sql`insert into wombat.runs (id, job, trigger, state, params, attempts, started_at, finished_at)
              values (${randomUUID()}, 'fetch-candles', 'fanout', 'failed', '{}', 5, now(), now())`.execute(tdb.db);
  }
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ SLACK_WEBHOOK_URL: slack.url, ALERT_RUN_BURST: '3', ALERT_DEAD_LETTERS_WARNING: '100', ALERT_DEAD_LETTERS_CRITICAL: '100' }) });
  t.match(await alerting.evaluate(), { opened: 8 });
  await alerting.deliver('slack');
  const texts = slack.received.map((m) => (m as { text: string }).text);
  t.equal(texts.length, 4);
  t.equal(texts.filter((x) => /fetch-candles run failed for good/.test(x)).length, 3);
  t.match(texts[3], /CRITICAL: 5 more runs failed for good or were lost/);
  t.match(texts[3], /fetch-candles 5/);
  t.equal((await open()).filter((a) => a.kind === 'run_failed').length, 8, 'each run has its alert');
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
