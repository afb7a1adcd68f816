import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCollectors } from '@wombat/collectors';
import { startFakeExchange } from '@wombat/collectors/testing';
import { startBoss } from '@wombat/core/platform';
import type { JobParams } from '@wombat/core/jobs';
import { publishRun } from '@wombat/core/runs';
import { createTestDatabase, type TestDatabase } from '@wombat/core/testing';
import { readExecutionLog, runBacktest } from '../src/index.ts';
import { memoryCandles } from './fixtures/candles.ts';
import { finished, jobStateEventually, startTestWorker, waitForRun } from './fixtures/harness.ts';

const fixture = path.join(import.meta.dirname, 'fixtures/worker-process.ts');

// Each case has a database and worker processes of its own, and spends most of its time
// waiting on job timeouts and slowed reads: they run side by side.
t.jobs = 4;

interface WorkerProcess {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
  killedAt(): number;
}

/** Starts a real worker process and resolves once it has begun fetching jobs. */
async function spawnWorker(t: { teardown(fn: () => unknown): void }, tdb: TestDatabase, env: Record<string, string>): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [fixture], {
    env: {
      ...process.env,
      DATABASE_URL: tdb.url,
      WORKER_QUEUES: 'backtest',
      WORKER_POLL_INTERVAL_SECONDS: '0.5',
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let signalledAt = 0;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, ms: performance.now() - signalledAt })),
  );
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start: ${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('"worker started"')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    child.on('exit', () => reject(new Error(`worker exited during start: ${output}`)));
  });
  const kill = child.kill.bind(child);
  child.kill = (signal?: NodeJS.Signals | number) => {
    signalledAt = performance.now();
    return kill(signal);
  };
  return { child, exited, killedAt: () => signalledAt };
}

const params = (symbols: number): JobParams<'backtest'> => ({
  strategy: 'volume-breakout',
  exchange: 'upbit',
  symbols: Array.from({ length: symbols }, (_, i) => `KRW-S${i}`),
  timeframe: '1D',
  from: '2025-01-01T00:00:00Z',
  to: '2026-01-01T00:00:00Z',
  options: { lookback: 5, volumeMultiplier: 1.5, exitLookback: 3 },
});

t.test('a worker killed mid-job: the job expires, another worker retries it, and it completes once', async (t) => {
  const tdb = await createTestDatabase(t);
  // The engine's role: pg-boss maintenance fails jobs whose worker stopped answering.
  const maintainer = await startBoss({ url: tdb.url, role: 'maintainer', log: tdb.log, poolSize: 2, extra: { superviseIntervalSeconds: 1, monitorIntervalSeconds: 1 } });
  t.teardown(() => maintainer.stop({ graceful: false, close: true }));
  const first = await spawnWorker(t, tdb, { FIXTURE_READ_DELAY_MS: '60' });
  const job = params(20);
  const id = await publishRun(tdb.db, maintainer, { job: 'backtest', params: job, trigger: 'task', timeoutSeconds: 3, retryLimit: 1, retryDelaySeconds: 1, retryBackoff: false });
  await waitForRun(tdb, id, (r) => r.state === 'running' && r.progress > 0);
  first.child.kill('SIGKILL');
  t.equal((await first.exited).signal, 'SIGKILL');
  const interrupted = await waitForRun(tdb, id, () => true);
  t.ok(interrupted.progress < 1, 'killed before the end');

  await spawnWorker(t, tdb, { FIXTURE_READ_DELAY_MS: '10' });
  const run = await waitForRun(tdb, id, finished, 20_000);
  t.equal(run.state, 'completed');
  t.equal(run.attempts, 2);
  const expected = await runBacktest(job, memoryCandles(), { signal: new AbortController().signal, onProgress: () => {} });
  t.same(run.result, JSON.parse(JSON.stringify(expected)), 'the retry produced the full result');
  const rows = await tdb.db.selectFrom('wombat.runs').select('id').execute();
  t.equal(rows.length, 1, 'one run, no duplicates');
  t.equal(await jobStateEventually(maintainer, 'backtest', id, 'completed'), 'completed');
});

t.test('a worker killed mid fetch-candles: the retry completes it and the Parquet file has each candle once', async (t) => {
  const tdb = await createTestDatabase(t);
  const maintainer = await startBoss({ url: tdb.url, role: 'maintainer', log: tdb.log, poolSize: 2, extra: { superviseIntervalSeconds: 1, monitorIntervalSeconds: 1 } });
  t.teardown(() => maintainer.stop({ graceful: false, close: true }));
  const exchange = await startFakeExchange();
  t.teardown(() => exchange.close());
  const dataRoot = await mkdtemp(path.join(tmpdir(), 'wombat-kill-'));
  t.teardown(() => rm(dataRoot, { recursive: true, force: true }));
  const env = { FIXTURE_CANDLES: 'real', WORKER_QUEUES: 'fetch-candles', UPBIT_BASE_URL: exchange.url, DATA_ROOT: dataRoot, STORAGE: 'parquet' };
  // Two requests a second: 1440 one-minute candles take 8 pages, about 4 s.
  const first = await spawnWorker(t, tdb, { ...env, UPBIT_REQUESTS_PER_SECOND: '2' });
  const params: JobParams<'fetch-candles'> = { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1m', daysBack: 1 };
  const id = await publishRun(tdb.db, maintainer, { job: 'fetch-candles', params, trigger: 'manual', timeoutSeconds: 3, retryLimit: 2, retryDelaySeconds: 1, retryBackoff: false });
  await waitForRun(tdb, id, (r) => r.state === 'running' && r.progress > 0);
  first.child.kill('SIGKILL');
  await first.exited;
  const pagesBeforeKill = exchange.requests.upbit.total;

  await spawnWorker(t, tdb, { ...env, UPBIT_REQUESTS_PER_SECOND: '10' });
  const run = await waitForRun(tdb, id, finished, 25_000);
  t.equal(run.state, 'completed', run.error ? JSON.stringify(run.error) : 'completed');
  t.equal(run.attempts, 2);
  t.ok(exchange.requests.upbit.total > pagesBeforeKill, 'the retry fetched again');
  const result = run.result as { first: string; last: string; written: number };
  const collectors = createCollectors({ dataRoot, storage: 'parquet', upbit: { baseUrl: exchange.url }, log: tdb.log });
  t.teardown(() => collectors.close());
  const from = new Date(result.first);
  const to = new Date(new Date(result.last).getTime() + 60_000);
  const stored = await collectors.readCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1m', from, to });
  const truth = exchange.upbit.candles('KRW-BTC', '1m', from, to);
  t.equal(new Set(stored.map((c) => c.time.getTime())).size, stored.length, 'no duplicate candles');
  t.same(stored.map((c) => c.time.toISOString()), truth.map((c) => c.time.toISOString()), 'every candle of the range, in order');
  t.equal(result.written, stored.length);
});

t.test('SIGTERM lets a running job finish, then the worker exits 0', async (t) => {
  const tdb = await createTestDatabase(t);
  const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 2 });
  t.teardown(() => boss.stop({ graceful: false, close: true }));
  const w = await spawnWorker(t, tdb, { FIXTURE_READ_DELAY_MS: '100', SHUTDOWN_TIMEOUT_MS: '8000' });
  const id = await publishRun(tdb.db, boss, { job: 'backtest', params: params(8), trigger: 'task' });
  await waitForRun(tdb, id, (r) => r.progress > 0);
  w.child.kill('SIGTERM');
  const exit = await w.exited;
  t.equal(exit.code, 0);
  t.ok(exit.ms < 8000, `exited ${Math.round(exit.ms)} ms after SIGTERM`);
  const run = await waitForRun(tdb, id, () => true);
  t.equal(run.state, 'completed', 'the running job finished during the drain');
  t.equal(run.progress, 1);
});

t.test('SIGTERM hands back a job that cannot finish in time, without spending an attempt, and it runs again elsewhere', async (t) => {
  const tdb = await createTestDatabase(t);
  const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 2 });
  t.teardown(() => boss.stop({ graceful: false, close: true }));
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-handback-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const executions = path.join(dir, 'executions.jsonl');
  // Drain deadline: SHUTDOWN_TIMEOUT_MS - 3000 = 1000 ms; the job needs about 6 s.
  const w = await spawnWorker(t, tdb, { FIXTURE_READ_DELAY_MS: '100', SHUTDOWN_TIMEOUT_MS: '4000', WORKER_EXECUTION_LOG: executions });
  const job = params(60);
  const id = await publishRun(tdb.db, boss, { job: 'backtest', params: job, trigger: 'task', retryLimit: 0, retryDelaySeconds: 1 });
  await waitForRun(tdb, id, (r) => r.progress > 0);
  w.child.kill('SIGTERM');
  const exit = await w.exited;
  t.equal(exit.code, 0);
  t.ok(exit.ms < 4000, `exited ${Math.round(exit.ms)} ms after SIGTERM`);
  const handedBack = await waitForRun(tdb, id, () => true);
  t.equal(handedBack.state, 'queued', 'a handed-back run waits in the queue');
  t.equal(handedBack.attempts, 0, 'its attempt was not spent');
  t.equal(handedBack.error, null, 'nothing failed');
  t.match(await boss.getJobById('backtest', id), { state: 'created', retryCount: 0 }, 'the job waits as if never fetched, although it had no retry left');
  const ran = readExecutionLog(await readFile(executions, 'utf8')).filter((e) => e.run === id);
  t.same(ran.map((e) => [e.ev, e.attempt, e.outcome ?? null]), [['start', 1, null], ['end', 1, 'aborted']], 'the handler started once and was stopped');

  await startTestWorker(t, tdb, { queues: ['backtest'], collectors: memoryCandles() });
  const run = await waitForRun(tdb, id, finished);
  t.equal(run.state, 'completed');
  t.equal(run.attempts, 1, 'completed by attempt 1 on the next worker');
  // pg-boss completes the job in its own transaction, just after the run's row: wait for it (bounded).
  let jobState: string | undefined;
  for (const until = Date.now() + 5000; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
    jobState = (await boss.getJobById('backtest', id))?.state;
    if (jobState === 'completed') break;
  }
  t.equal(jobState, 'completed', 'run and job agree');
});
