/**
 * Chaos: real engine and worker processes (main.ts, default heartbeat and
 * reconcile settings) on the test database; workers are SIGKILLed mid-run.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBoss } from '@wombat/core/platform';
import { insertSchedule, validateScheduleInput } from '@wombat/core/schedules';
import { publishRun, type Run } from '@wombat/core/runs';
import { childEnv, createTestDatabase, type TestDatabase } from '@wombat/core/testing';
import { buildApp } from '@wombat/api';

const root = path.resolve(import.meta.dirname, '../..');
const engineMain = path.join(root, 'services/scheduler-engine/src/main.ts');
const workerMain = path.join(root, 'services/worker/src/main.ts');
/** The bound services/worker/README.md states: a run of a SIGKILLed worker is final or retrying within this. */
const LOSS_BOUND_MS = 60_000;

interface Proc {
  child: ChildProcess;
  exited: Promise<unknown>;
  output(): string;
}

/** Starts a service process and resolves once its log says `ready`. */
async function start(t: { teardown(fn: () => unknown): void }, main: string, env: Record<string, string>, ready: string): Promise<Proc> {
  const child = spawn(process.execPath, [main], {
    env: childEnv({ LOG_FORMAT: 'json', LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_MS: '5000', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const until = Date.now() + 30_000;
  while (!out.includes(ready)) {
    if (child.exitCode !== null || Date.now() > until) throw new Error(`${path.basename(path.dirname(path.dirname(main)))} did not start: ${out}`);
    await sleep(50);
  }
  return { child, exited, output: () => out };
}

const startWorker = (t: { teardown(fn: () => unknown): void }, tdb: TestDatabase) =>
  start(t, workerMain, { DATABASE_URL: tdb.url, WORKER_QUEUES: 'canary', WORKER_POLL_INTERVAL_SECONDS: '0.5' }, '"worker started"');

async function getRun(tdb: TestDatabase, id: string): Promise<Run> {
  return tdb.db.selectFrom('wombat.runs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

// The two cases share nothing (a database and processes each) and spend their time
// waiting out the default heartbeats: they run side by side.
t.jobs = 2;

async function waitFor<T>(what: string, limitMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + limitMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

t.test('SIGKILL in the final attempt: the run ends failed/worker_lost within the bound, is a dead letter, and its overlap-skip schedule goes on', async (t) => {
  const tdb = await createTestDatabase(t);
  const def = validateScheduleInput({ name: 'lost-final', job: 'canary', every: '4s', overlap: 'skip', max_retries: 0, timeout_seconds: 300, params: { sleep_ms: 2500 } });
  if (!def.ok) throw new Error(def.problems.join('; '));
  const schedule = await insertSchedule(tdb.db, def.value);
  await start(t, engineMain, { DATABASE_URL: tdb.url, ENABLE_SCHEDULER: 'true' }, '"engine started"');
  const first = await startWorker(t, tdb);

  const victim = await waitFor('a running run of the schedule', 30_000, async () =>
    tdb.db.selectFrom('wombat.runs').selectAll().where('schedule_id', '=', schedule.id).where('state', '=', 'running').executeTakeFirst(),
  );
  t.ok(victim.worker_id, 'the running run names its worker');
  first.child.kill('SIGKILL');
  const killedAt = Date.now();
  await first.exited;
  await startWorker(t, tdb);

  const lost = await waitFor('the run to end', LOSS_BOUND_MS + 5_000, async () => {
    const r = await getRun(tdb, victim.id);
    return r.state === 'running' ? undefined : { run: r, afterMs: Date.now() - killedAt };
  });
  t.equal(lost.run.state, 'failed');
  t.match(lost.run.error, { code: 'worker_lost', message: /attempt 1 was lost/ });
  t.ok(lost.run.finished_at instanceof Date);
  t.ok(lost.afterMs <= LOSS_BOUND_MS, `final ${Math.round(lost.afterMs / 1000)} s after the kill (bound ${LOSS_BOUND_MS / 1000} s)`);

  const app = await buildApp({ db: tdb.db, sql: tdb.sql, boss: await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 1 }).then((b) => (t.teardown(() => b.stop({ graceful: false, close: true })), b)), log: tdb.log, auth: { adminToken: 'a'.repeat(32), readToken: undefined, reads: 'open' }, taskResultTtlDays: 7 });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const dead = (await (await fetch(`${url}/api/dead-letters`)).json()) as { dead_letters: { id: string; error: { code: string } }[] };
  t.match(dead.dead_letters, [{ id: victim.id, error: { code: 'worker_lost' } }], 'the lost run is a dead letter');

  const next = await waitFor('a later occurrence to complete', 60_000, async () =>
    tdb.db
      .selectFrom('wombat.runs')
      .selectAll()
      .where('schedule_id', '=', schedule.id)
      .where('scheduled_for', '>', victim.scheduled_for!)
      .where('state', '=', 'completed')
      .executeTakeFirst(),
  );
  t.ok(next.worker_id && next.worker_id !== victim.worker_id, 'the next occurrence ran on the new worker');
  const stuck = await tdb.db.selectFrom('wombat.runs').select('id').where('schedule_id', '=', schedule.id).where('state', '=', 'running').where('worker_id', '=', victim.worker_id).execute();
  t.same(stuck, [], 'nothing of the dead worker still counts as running');
});

t.test('SIGKILL in a non-final attempt: the run is retried, completes once, and its history keeps the lost attempt', async (t) => {
  const tdb = await createTestDatabase(t);
  await start(t, engineMain, { DATABASE_URL: tdb.url, ENABLE_SCHEDULER: 'false' }, '"engine started');
  const first = await startWorker(t, tdb);
  const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 1 });
  t.teardown(() => boss.stop({ graceful: false, close: true }));
  const id = await publishRun(tdb.db, boss, { job: 'canary', params: { sleep_ms: 2500 }, trigger: 'task', retryLimit: 1, retryDelaySeconds: 1, retryBackoff: false, timeoutSeconds: 300 });
  await waitFor('the run to start', 30_000, async () => ((await getRun(tdb, id)).state === 'running' ? true : undefined));
  first.child.kill('SIGKILL');
  const killedAt = Date.now();
  await first.exited;
  await startWorker(t, tdb);

  const seen = new Set<string>();
  const retried = await waitFor('the lost attempt to be retried', LOSS_BOUND_MS + 5_000, async () => {
    const r = await getRun(tdb, id);
    seen.add(r.state);
    return r.state !== 'running' || r.attempts > 1 ? Date.now() - killedAt : undefined;
  });
  t.ok(retried <= LOSS_BOUND_MS, `retrying ${Math.round(retried / 1000)} s after the kill (bound ${LOSS_BOUND_MS / 1000} s)`);
  const run = await waitFor('the retry to complete', 60_000, async () => {
    const r = await getRun(tdb, id);
    seen.add(r.state);
    return r.state === 'completed' || r.state === 'failed' ? r : undefined;
  });
  t.equal(run.state, 'completed');
  t.equal(run.attempts, 2, 'two attempts: the lost one and the retry');
  t.match(run.error, { code: 'worker_lost', message: /attempt 1 was lost/ }, 'the history keeps why attempt 1 ended');
  t.match(run.result, { attempt: 2 });
  const job = await boss.getJobById('canary', id);
  t.equal(job?.state, 'completed', 'pg-boss completed the job once');
  const rows = await tdb.db.selectFrom('wombat.runs').select('id').execute();
  t.equal(rows.length, 1, 'one run, no duplicate');
});
