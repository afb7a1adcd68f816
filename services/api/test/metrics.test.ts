import t from 'tap';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { parse } from 'yaml';
import { repoRoot } from '@wombat/core/platform';
import { createTestDatabase } from '@wombat/core/testing';
import { cachedDatabaseHealth } from '@wombat/core/alerts';
import { createMetrics } from '../src/metrics.ts';

const tdb = await createTestDatabase(t);

async function finishRuns(n: number, job: string, state: string, seconds: number) {
  for (let i = 0; i < n; i++) {
    await sql`
      insert into wombat.runs (id, job, trigger, state, params, started_at, finished_at)
      values (${randomUUID()}, ${job}, 'task', ${state}, '{}', now() - make_interval(secs => ${seconds}), now())`.execute(tdb.db);
  }
}

const sample = (text: string, name: string) => {
  const m = new RegExp(`^${name.replace(/[{}"+]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};

t.test('wombat_run_duration_seconds is a cumulative histogram: each finished run counted once, counts never fall', async (t) => {
  const metrics = createMetrics(tdb.sql, { staleFactor: 1.5 });
  await metrics.render();
  await finishRuns(3, 'canary', 'completed', 0.2);
  await finishRuns(1, 'canary', 'failed', 20);
  await new Promise((r) => setTimeout(r, 800));
  const [a, b] = await Promise.all([metrics.render(), metrics.render()]);
  t.equal(a, b, 'concurrent scrapes share one read');
  t.equal(sample(a, 'wombat_run_duration_seconds_count{job="canary"}'), 4);
  t.equal(sample(a, 'wombat_run_duration_seconds_bucket{job="canary",le="0.5"}'), 3);
  t.equal(sample(a, 'wombat_run_duration_seconds_bucket{job="canary",le="30"}'), 4);
  t.equal(sample(a, 'wombat_run_duration_seconds_bucket{job="canary",le="+Inf"}'), 4);
  t.equal(sample(a, 'wombat_runs_finished_total{job="canary",state="failed"}'), 1);
  t.equal(sample(a, 'wombat_runs_finished_total{job="canary",state="completed"}'), 3);
  // Retention deletes the runs: a windowed histogram would fall here, a cumulative one does not.
  await sql`delete from wombat.runs`.execute(tdb.db);
  const c = await metrics.render();
  t.equal(sample(c, 'wombat_run_duration_seconds_count{job="canary"}'), 4, 'still 4 after the runs are purged');
  await finishRuns(1, 'canary', 'completed', 2);
  await new Promise((r) => setTimeout(r, 800));
  const d = await metrics.render();
  t.equal(sample(d, 'wombat_run_duration_seconds_count{job="canary"}'), 5);
  t.equal(sample(d, 'wombat_run_duration_seconds_bucket{job="canary",le="0.5"}'), 3);
  t.match(d, /# TYPE wombat_run_duration_seconds histogram/);
});

t.test('metrics include workers, active states, engines, stale schedules and alerts', async (t) => {
  const metrics = createMetrics(tdb.sql, { staleFactor: 1.5 });
  await sql`insert into wombat.engines (id, host, pid, version, heartbeat_interval_ms, enabled) values (gen_random_uuid(), 'h', 1, 't', 3600000, true)`.execute(tdb.db);
  await sql`
    insert into wombat.workers (id, host, pid, version, queues, concurrency, started_at, last_beat_at, heartbeat_interval_ms, runs_in_hand, rss_bytes, stopped_at) values
      (gen_random_uuid(), 'w1', 1, 't', '{canary,fetch-candles}', 1, now(), now(), 60000, 0, 123456789, null),
      (gen_random_uuid(), 'w2', 2, 't', '{canary}', 1, now(), now() - interval '1 hour', 1000, 0, 1, null)`.execute(tdb.db);
  await sql`
    insert into wombat.schedules (name, job, kind, every, every_seconds, alert_stale_factor) values ('every-minute', 'canary', 'every', '1m', 60, 2)`.execute(tdb.db);
  await sql`insert into wombat.alerts (key, kind, severity, state, subject, message) values ('dead_letters', 'dead_letters', 'warning', 'open', 's', 'm')`.execute(tdb.db);
  await sql`insert into wombat.alert_counters (name, label, value) values ('raised', 'run_failed:critical', 2), ('delivery_failures', 'slack', 3)`.execute(tdb.db);
  const text = await metrics.render();
  t.equal(sample(text, 'wombat_workers_live{queue="canary"}'), 1, 'the silent worker is not live');
  t.equal(sample(text, 'wombat_workers_live{queue="fetch-candles"}'), 1);
  t.equal(sample(text, 'wombat_worker_processes_live'), 1);
  t.match(text, /wombat_worker_rss_bytes\{worker="[^"]+",host="w1",pid="\d+"\} 123456789/);
  t.equal(sample(text, 'wombat_runs_active{job="canary",state="held"}'), 0);
  t.equal(sample(text, 'wombat_runs_active{job="canary",state="retrying"}'), 0);
  t.equal(sample(text, 'wombat_engines_live'), 1);
  t.match(text, /wombat_schedule_stale_after_seconds\{schedule_id="\d+",schedule="every-minute"\} 120/);
  t.match(text, /wombat_schedule_seconds_since_success\{schedule_id="\d+",schedule="every-minute"\} \d/);
  t.equal(sample(text, 'wombat_alerts_open{kind="dead_letters",severity="warning"}'), 1);
  t.equal(sample(text, 'wombat_alerts_raised_total{kind="run_failed",severity="critical"}'), 2);
  t.equal(sample(text, 'wombat_alert_delivery_failures_total{channel="slack"}'), 3);
  await sql`update wombat.alert_counters set value = value + 2 where name = 'raised'`.execute(tdb.db);
  t.equal(sample(await metrics.render(), 'wombat_alerts_raised_total{kind="run_failed",severity="critical"}'), 4, 'counters follow the table');
});

t.test('the database beneath: size, connections, the hot tables, the largest tables, the watched file systems', async (t) => {
  const metrics = createMetrics(tdb.sql, { staleFactor: 1.5, databaseHealth: cachedDatabaseHealth(tdb.db, [{ role: 'data_root', path: repoRoot }], 0) });
  const text = await metrics.render();
  const [size] = await tdb.sql<{ n: string }[]>`select pg_database_size(current_database())::text as n`;
  t.ok(Math.abs(sample(text, 'wombat_db_size_bytes')! - Number(size!.n)) < 1_048_576, 'the database size');
  const used = sample(text, 'wombat_db_connections')!;
  t.ok(used >= 1 && used <= sample(text, 'wombat_db_max_connections')!, 'connections within max_connections');
  t.type(sample(text, 'wombat_db_oldest_transaction_seconds'), 'number');
  t.type(sample(text, 'wombat_db_dead_rows{table="wombat.runs"}'), 'number');
  t.type(sample(text, 'wombat_db_live_rows{table="pgboss.job"}'), 'number');
  t.match(text, /^wombat_db_table_bytes\{table="(wombat|pgboss)\.\w+"\} \d+$/m);
  t.ok(sample(text, 'wombat_filesystem_size_bytes{role="data_root"}')! > sample(text, 'wombat_filesystem_free_bytes{role="data_root"}')!, 'the file system of DATA_ROOT');
});

t.test('the Prometheus alert rules parse and use only metrics the api exports', async (t) => {
  const file = path.join(repoRoot, 'deploy/prometheus/wombat-alerts.yml');
  const doc = parse(readFileSync(file, 'utf8')) as { groups: { name: string; rules: Record<string, unknown>[] }[] };
  t.ok(Array.isArray(doc.groups) && doc.groups.length > 0);
  const exported = new Set([...(await createMetrics(tdb.sql).render()).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
  const names: string[] = [];
  for (const g of doc.groups) {
    t.type(g.name, 'string');
    for (const rule of g.rules) {
      t.type(rule.alert, 'string', 'every rule is an alerting rule');
      t.type(rule.expr, 'string');
      t.match(rule.labels, { severity: /^(warning|critical)$/ });
      t.type((rule.annotations as { summary?: unknown })?.summary, 'string');
      if (rule.for !== undefined) t.match(rule.for, /^\d+[smh]$/);
      const expr = String(rule.expr);
      t.equal([...expr].filter((c) => c === '(').length, [...expr].filter((c) => c === ')').length, `${String(rule.alert)}: balanced parentheses`);
      for (const m of expr.matchAll(/\bwombat_[a-z_]+/g)) {
        const base = m[0].replace(/_(bucket|sum|count)$/, '');
        t.ok(exported.has(base) || exported.has(m[0]), `${String(rule.alert)}: ${m[0]} is exported by /metrics`);
      }
      names.push(String(rule.alert));
    }
  }
  t.equal(new Set(names).size, names.length, 'alert names are unique');
  for (const covered of ['WombatRunFailed', 'WombatScheduleStale', 'WombatNoLiveEngine', 'WombatWorkersNone', 'WombatQueueLengthCritical', 'WombatFailureRateCritical', 'WombatRunTimeCritical', 'WombatDeadLettersCritical']) {
    t.ok(names.includes(covered), `${covered} is defined`);
  }
});
