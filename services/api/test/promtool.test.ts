import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { sql } from 'kysely';
import { repoRoot } from '@wombat/core/platform';
import { startTestApi } from './helpers.ts';

/**
 * Prometheus's own checker on what we ship: the live /metrics (naming and
 * format conventions) and the alerting rules. promtool comes with Debian's
 * `prometheus` package, which .ci/run installs; under WOMBAT_CI=1 a missing
 * promtool fails these tests instead of skipping them.
 */
const hasPromtool = spawnSync('sh', ['-c', 'command -v promtool']).status === 0;
const ci = process.env.CI === 'true' || process.env.WOMBAT_CI === '1';
const skip = hasPromtool || ci ? false : "promtool is not installed here (Debian's prometheus package; .ci/run installs it)";

const promtool = (args: string[], input?: string) => spawnSync('promtool', args, { encoding: 'utf8', timeout: 30_000, ...(input !== undefined ? { input } : {}) });

t.test('promtool check metrics passes on a live /metrics with every family filled', { skip }, async (t) => {
  t.ok(hasPromtool, 'promtool is installed');
  const api = await startTestApi(t);
  const db = api.database.db;
  await sql`insert into wombat.engines (id, host, pid, version, heartbeat_interval_ms, enabled) values (gen_random_uuid(), 'h', 1, 't', 3600000, true)`.execute(db);
  await sql`
    insert into wombat.workers (id, host, pid, version, queues, concurrency, started_at, last_beat_at, heartbeat_interval_ms, runs_in_hand, rss_bytes, stopped_at)
    values (gen_random_uuid(), 'w1', 1, 't', '{canary}', 1, now(), now(), 60000, 0, 123456789, null)`.execute(db);
  await sql`insert into wombat.schedules (name, job, kind, every, every_seconds, alert_stale_factor) values ('every-minute', 'canary', 'every', '1m', 60, 2)`.execute(db);
  await sql`insert into wombat.runs (id, job, trigger, state, params, started_at, finished_at) values (gen_random_uuid(), 'canary', 'task', 'failed', '{}', now() - interval '2 seconds', now())`.execute(db);
  await sql`insert into wombat.alerts (key, kind, severity, state, subject, message) values ('dead_letters', 'dead_letters', 'warning', 'open', 's', 'm')`.execute(db);
  const metrics = await api.call('GET', '/metrics', { token: null });
  t.equal(metrics.status, 200);
  t.match(metrics.body, /^wombat_worker_processes_live 1$/m, 'the families are filled');
  const r = promtool(['check', 'metrics'], String(metrics.body));
  t.equal(r.status, 0, `promtool check metrics exits 0 (${r.stdout}${r.stderr})`);
  t.equal(`${r.stdout}${r.stderr}`.trim(), '', 'and finds nothing to say');
});

t.test('promtool check rules passes on the shipped Prometheus alert rules', { skip }, async (t) => {
  t.ok(hasPromtool, 'promtool is installed');
  const r = promtool(['check', 'rules', path.join(repoRoot, 'deploy/prometheus/wombat-alerts.yml')]);
  t.equal(r.status, 0, `promtool check rules exits 0 (${r.stdout}${r.stderr})`);
  t.match(r.stdout, /SUCCESS: \d+ rules found/);
});
