import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startBoss } from '@wombat/core/platform';
import type { JobParams } from '@wombat/core/jobs';
import { publishRun } from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';
import { finished, getRun, jobStateEventually, waitForRun } from './fixtures/harness.ts';

/**
 * A worker SIGKILLed mid-job with no engine running: the job's pg-boss heartbeat
 * goes stale, a surviving worker's pg-boss monitor fails it, and it is retried,
 * long before its timeout (an hour for a backtest).
 */
const fixture = path.join(import.meta.dirname, 'fixtures/worker-process.ts');

function spawnWorker(t: { teardown(fn: () => unknown): void }, url: string, env: Record<string, string>) {
  const child = spawn(process.execPath, [fixture], {
    env: { ...process.env, DATABASE_URL: url, WORKER_QUEUES: 'backtest', WORKER_POLL_INTERVAL_SECONDS: '0.5', LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const started = new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (out.includes('"worker started"')) {
        clearInterval(timer);
        resolve();
      }
    }, 20);
    child.on('exit', () => {
      clearInterval(timer);
      reject(new Error(`worker exited: ${out}`));
    });
  });
  return { child, exited, started };
}

t.test('a dead worker\'s job is failed by its heartbeat and retried without an engine, well before its timeout', async (t) => {
  const tdb = await createTestDatabase(t);
  // A producer only: nothing here runs the engine's pg-boss maintenance.
  const producer = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 2 });
  t.teardown(() => producer.stop({ graceful: false, close: true }));
  const doomed = spawnWorker(t, tdb.url, { FIXTURE_READ_DELAY_MS: '500' });
  await doomed.started;
  const params: JobParams<'backtest'> = {
    strategy: 'volume-breakout',
    exchange: 'upbit',
    symbols: Array.from({ length: 40 }, (_, i) => `KRW-S${i}`),
    timeframe: '1D',
    from: '2025-01-01T00:00:00Z',
    to: '2026-01-01T00:00:00Z',
  };
  // Default timeout (3600 s); the shortest heartbeat pg-boss allows.
  const id = await publishRun(tdb.db, producer, { job: 'backtest', params, trigger: 'task', retryLimit: 1, retryDelaySeconds: 1, retryBackoff: false, heartbeatSeconds: 10 });
  await waitForRun(tdb, id, (r) => r.state === 'running' && r.progress > 0, 30_000);
  doomed.child.kill('SIGKILL');
  await doomed.exited;
  const killedAt = Date.now();

  const survivor = spawnWorker(t, tdb.url, { FIXTURE_READ_DELAY_MS: '0' });
  await survivor.started;
  const run = await waitForRun(tdb, id, finished, 90_000);
  const recoveredMs = Date.now() - killedAt;
  t.comment(`job of the killed worker retried and completed ${recoveredMs} ms after the kill (heartbeat 10 s)`);
  t.equal(run.state, 'completed', 'the survivor completed it');
  t.equal(run.attempts, 2, 'on its second attempt');
  t.equal(await jobStateEventually(producer, 'backtest', id, 'completed'), 'completed', 'its job completed');
  t.equal((await getRun(tdb, id)).state, 'completed');
});
