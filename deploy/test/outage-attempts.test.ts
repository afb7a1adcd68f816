/**
 * A database outage longer than every heartbeat limit, with jobs in flight: real engine
 * and worker processes (main.ts, default pg-boss monitor settings) on a PostgreSQL of
 * this file's own, stopped for 8 s while canaries run through it and others finish
 * during it. The limits are scaled down so that the outage outlasts each of them without
 * waiting out the defaults (15 s): job heartbeats stale after 4 s, worker heartbeats after
 * 4.5 s, the engine's reconciler taking a 5 s gap for an outage. Every run completes by its
 * original attempt: nothing retried, nothing declared lost, each handler run once (counted
 * by the worker's execution log, not by the run states), run history and pg-boss agree.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { createDatabase, startBoss } from '@wombat/core/platform';
import { publishRun } from '@wombat/core/runs';
import { startPrivatePostgres, testLogger } from '@wombat/core/testing';
import { readExecutionLog } from '@wombat/worker';
import { commonEnv, startProcess, waitReady, type ServiceProcess } from '../outage-harness.ts';

const OUTAGE_MS = 8_000;
/** Heartbeat settings of both services: each limit well inside the outage. */
const HEARTBEATS = { JOB_HEARTBEAT_S: '4', WORKER_HEARTBEAT_INTERVAL_MS: '1500', ENGINE_RUN_RECONCILE_INTERVAL_MS: '1500' };
// A private server, two services and an outage: past tap's default per-file limit on a busy machine.
t.setTimeout(300_000);

/** A service of this test as a process, killed at teardown, resolved once ready. */
async function start(t: { teardown(fn: () => unknown): void }, name: 'scheduler-engine' | 'worker', env: Record<string, string>): Promise<ServiceProcess> {
  const p = startProcess(name, { ...commonEnv({ databaseUrl: pg.url, dataRoot: dir }), ...HEARTBEATS, ...env });
  t.teardown(async () => {
    if (p.alive()) p.child.kill('SIGKILL');
    await p.exited;
  });
  await waitReady(p, '');
  return p;
}

const pg = await startPrivatePostgres(t);
const dir = mkdtempSync(path.join(tmpdir(), 'wombat-outage-attempts-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const executions = path.join(dir, 'executions.jsonl');

t.test(`an outage of ${OUTAGE_MS / 1000} s with jobs in flight: nothing retried, lost or run twice`, async (t) => {
  const engine = await start(t, 'scheduler-engine', { ENABLE_SCHEDULER: 'true' });
  // One fetch loop per job, so every job runs at once.
  const worker = await start(t, 'worker', { WORKER_QUEUES: 'canary', WORKER_CONCURRENCY: 'canary=8', WORKER_BATCH_SIZE: 'canary=1', WORKER_POLL_INTERVAL_SECONDS: '0.5', WORKER_EXECUTION_LOG: executions });
  const database = createDatabase({ url: pg.url, poolSize: 2, applicationName: 'outage-test', connectTimeoutMs: 2000, statementTimeoutMs: 5000, transactionTimeoutMs: 5000 });
  const boss = await startBoss({ url: pg.url, role: 'producer', log: testLogger('outage-test'), poolSize: 2 });
  // Through the outage, and finished during it; each may be retried once, which must not happen.
  const through = [];
  for (let i = 0; i < 3; i++) through.push(await publishRun(database.db, boss, { job: 'canary', params: { sleep_ms: OUTAGE_MS + 7_000 }, trigger: 'task', retryLimit: 1, retryDelaySeconds: 0 }));
  const during = [];
  for (let i = 0; i < 3; i++) during.push(await publishRun(database.db, boss, { job: 'canary', params: { sleep_ms: 4_000 + i * 1000 }, trigger: 'task', retryLimit: 1, retryDelaySeconds: 0 }));
  const ids = [...through, ...during];
  const until = Date.now() + 60_000;
  for (;;) {
    const [row] = await database.sql<{ n: number }[]>`select count(*)::int as n from wombat.runs where id = any(${ids}::uuid[]) and state = 'running'`;
    if (row!.n === ids.length) break;
    if (Date.now() > until) throw new Error(`runs did not start: ${worker.output().slice(-3000)}`);
    await sleep(100);
  }
  await boss.stop({ graceful: false, close: true });
  await database.close();

  await pg.stop();
  await sleep(OUTAGE_MS);
  await pg.start();
  const back = Date.now();

  const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
  t.teardown(() => sql.end({ timeout: 1 }));
  type Row = { id: string; state: string; attempts: number; error: unknown; job_state: string | null; retry_count: number | null };
  let rows: Row[] = [];
  const settleBy = Date.now() + 90_000;
  while (Date.now() < settleBy) {
    rows = await sql<Row[]>`
      select r.id, r.state, r.attempts, r.error, j.state::text as job_state, j.retry_count
      from wombat.runs r left join pgboss.job j on j.id = r.id and j.name = r.job where r.id = any(${ids}::uuid[])`.catch(() => []);
    if (rows.length === ids.length && rows.every((r) => r.state === 'completed' && r.job_state === 'completed')) break;
    await sleep(250);
  }
  t.comment(`every run and job completed ${Date.now() - back} ms after the database's return`);
  for (const r of rows) {
    t.match(r, { state: 'completed', attempts: 1, error: null, job_state: 'completed', retry_count: 0 }, `run ${r.id}: completed by its original attempt, and pg-boss agrees`);
  }
  const [superseded] = await sql<{ n: number }[]>`select count(*)::int as n from wombat.superseded_attempts`;
  t.equal(superseded!.n, 0, 'no attempt was superseded');
  t.notMatch(engine.output(), /run lost|run attempt lost/, 'the engine declared no run lost');

  // Counted at the handler: each run started once and ended once, completed.
  const events = readExecutionLog(readFileSync(executions, 'utf8'));
  for (const id of ids) {
    const mine = events.filter((e) => e.run === id);
    t.same(mine.map((e) => [e.ev, e.attempt, e.outcome ?? null]), [['start', 1, null], ['end', 1, 'completed']], `run ${id}: one execution`);
  }
  for (const p of [worker, engine]) {
    t.ok(p.alive(), `${p.name} rode out the outage`);
    p.child.kill('SIGTERM');
    t.match(await p.exited, { code: 0 }, `${p.name} exits 0 on SIGTERM`);
  }
});
