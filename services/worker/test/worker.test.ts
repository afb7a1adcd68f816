import t from 'tap';
import { startBoss } from '@wombat/core/platform';
import { CANCEL_CHANNEL, type JobParams } from '@wombat/core/jobs';
import { sql } from 'kysely';
import { applyAttemptUpdates, insertRunAndSend, publishRun } from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';
import { runBacktest } from '../src/index.ts';
import { collectPrices } from '../src/jobs/collect.ts';
import { memoryCandles } from './fixtures/candles.ts';
import { finished, getRun, jobStateEventually, startTestWorker, waitForRun } from './fixtures/harness.ts';

const backtestParams = (symbols: string[]): JobParams<'backtest'> => ({
  strategy: 'ma-crossover',
  exchange: 'upbit',
  symbols,
  timeframe: '1D',
  from: '2025-01-01T00:00:00Z',
  to: '2026-01-01T00:00:00Z',
  options: { fast: 3, slow: 10 },
});
const manySymbols = (n: number) => Array.from({ length: n }, (_, i) => `KRW-S${i}`);

t.test('a canary completes and records its latency from the scheduled instant', async (t) => {
  const tdb = await createTestDatabase(t);
  const { boss } = await startTestWorker(t, tdb, { queues: ['canary'], batchSize: 50 });
  const scheduledFor = new Date(Date.now() - 40);
  const id = await publishRun(tdb.db, boss, { job: 'canary', params: {}, trigger: 'schedule', scheduleId: 1, scheduledFor });
  const run = await waitForRun(tdb, id, finished);
  t.equal(run.state, 'completed');
  t.equal(run.attempts, 1);
  t.equal(run.progress, 1);
  const latencyMs = (run.result as { latencyMs: number }).latencyMs;
  t.ok(latencyMs >= 40, `latency ${latencyMs} ms counts from scheduled_for`);
  t.ok(run.started_at! >= scheduledFor && run.finished_at! >= run.started_at!);
});

t.test('a backtest reports progress and stores its trades and summary', async (t) => {
  const tdb = await createTestDatabase(t);
  const midwaySeen = Promise.withResolvers<void>();
  const source = memoryCandles({ delayMs: 30, hold: midwaySeen.promise });
  const { boss } = await startTestWorker(t, tdb, { queues: ['backtest'], collectors: source });
  const params = backtestParams(manySymbols(4));
  const id = await publishRun(tdb.db, boss, { job: 'backtest', params, trigger: 'task' });
  const midway = await waitForRun(tdb, id, (r) => r.state === 'running' && r.progress > 0 && r.progress < 1);
  midwaySeen.resolve();
  t.match(midway.progress_message, /KRW-S\d: 365 candles/);
  const run = await waitForRun(tdb, id, finished);
  t.equal(run.state, 'completed');
  t.equal(run.progress, 1);
  const expected = await runBacktest(params, memoryCandles(), { signal: new AbortController().signal, onProgress: () => {} });
  t.same(run.result, JSON.parse(JSON.stringify(expected)));
  t.ok(expected.trades.length > 0, 'the series produces trades');
  t.equal(expected.summary.candles, 4 * 365);
});

t.test('a failing job is retried with backoff, then recorded as failed (a dead letter)', async (t) => {
  const tdb = await createTestDatabase(t);
  const source = memoryCandles({ failures: 10 });
  const { boss } = await startTestWorker(t, tdb, { queues: ['backtest'], collectors: source });
  const id = await publishRun(tdb.db, boss, {
    job: 'backtest',
    params: backtestParams(['KRW-BTC']),
    trigger: 'task',
    retryLimit: 2,
    retryDelaySeconds: 1,
    retryBackoff: true,
  });
  const afterFirst = await waitForRun(tdb, id, (r) => r.attempts === 1 && r.state === 'retrying');
  t.match(afterFirst.error, { message: 'candle store unavailable', code: 'store_unavailable' }, 'a retried attempt keeps its error');
  t.equal(afterFirst.finished_at, null);
  const run = await waitForRun(tdb, id, (r) => r.state === 'failed');
  t.equal(run.attempts, 3);
  t.equal(source.reads, 3);
  t.ok(run.finished_at instanceof Date);
  t.match(run.error, { name: 'Error', message: 'candle store unavailable' });
  t.equal(await jobStateEventually(boss, 'backtest', id, 'failed'), 'failed');
});

t.test('invalid params fail at once, without a retry', async (t) => {
  const tdb = await createTestDatabase(t);
  const { boss } = await startTestWorker(t, tdb, { queues: ['backtest'], collectors: memoryCandles() });
  const id = await publishRun(tdb.db, boss, {
    job: 'backtest',
    params: { ...backtestParams(['KRW-BTC']), options: { fast: 30, slow: 10 } },
    trigger: 'task',
    retryLimit: 3,
    retryDelaySeconds: 1,
  });
  const run = await waitForRun(tdb, id, finished);
  t.equal(run.state, 'failed');
  t.equal(run.attempts, 1);
  t.match(run.error, { name: 'ValidationError', code: 'invalid_input', message: /fast must be smaller than params\.options\.slow/ });
  const bad = await publishRun(tdb.db, boss, { job: 'backtest', params: { strategy: 'ma-crossover' }, trigger: 'task', retryLimit: 3 });
  const badRun = await waitForRun(tdb, bad, finished);
  t.equal(badRun.state, 'failed');
  t.match(badRun.error, { message: /params of backtest.* must have required properties|params of backtest/ });
  t.equal(await jobStateEventually(boss, 'backtest', bad, 'failed'), 'failed');
});

t.test('a job past its timeout is aborted and fails with a timeout error', async (t) => {
  const tdb = await createTestDatabase(t);
  const source = memoryCandles({ delayMs: 200 });
  const { boss, worker } = await startTestWorker(t, tdb, { queues: ['backtest'], collectors: source });
  const id = await publishRun(tdb.db, boss, { job: 'backtest', params: backtestParams(manySymbols(30)), trigger: 'task', timeoutSeconds: 1, retryLimit: 0 });
  const run = await waitForRun(tdb, id, finished);
  t.equal(run.state, 'failed');
  t.match(run.error, { code: 'timeout', message: 'job ran past its timeout of 1 s' });
  t.ok(source.reads < 30, `stopped after ${source.reads} of 30 reads`);
  t.same(worker.running(), []);
});

t.test('cancelling a running job aborts it and leaves the run cancelled', async (t) => {
  const tdb = await createTestDatabase(t);
  const source = memoryCandles({ delayMs: 100 });
  const { boss, worker } = await startTestWorker(t, tdb, { queues: ['backtest'], collectors: source });
  const id = await publishRun(tdb.db, boss, { job: 'backtest', params: backtestParams(manySymbols(50)), trigger: 'task', retryLimit: 2, retryDelaySeconds: 1 });
  await waitForRun(tdb, id, (r) => r.progress > 0);
  // What the api does: mark the run, then tell whichever worker holds it.
  await tdb.db.updateTable('wombat.runs').set({ state: 'cancelled', finished_at: new Date() }).where('id', '=', id).execute();
  await tdb.sql`select pg_notify(${CANCEL_CHANNEL}, ${id})`;
  const deadline = Date.now() + 5000;
  while (worker.running().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.same(worker.running(), [], 'the handler stopped');
  const readsAtStop = source.reads;
  t.ok(readsAtStop < 50, `stopped after ${readsAtStop} of 50 reads`);
  await new Promise((r) => setTimeout(r, 1500));
  const run = await getRun(tdb, id);
  t.equal(run.state, 'cancelled');
  t.equal(run.attempts, 1);
  t.equal(source.reads, readsAtStop, 'not retried');
  t.equal(await jobStateEventually(boss, 'backtest', id, 'failed'), 'failed');
});

t.test('a job whose run was cancelled before the worker took it stops at once and is not retried', async (t) => {
  const tdb = await createTestDatabase(t);
  const source = memoryCandles({ delayMs: 50 });
  const producer = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 2 });
  t.teardown(() => producer.stop({ graceful: false, close: true }));
  const id = await publishRun(tdb.db, producer, { job: 'backtest', params: backtestParams(manySymbols(40)), trigger: 'task', retryLimit: 2, retryDelaySeconds: 1 });
  // The api's cancel of a queued job lost the race with a fetch: the run is 'cancelled', the job
  // still in pg-boss's hands, and no worker held it when the NOTIFY went out.
  await tdb.db.updateTable('wombat.runs').set({ state: 'cancelled', finished_at: new Date() }).where('id', '=', id).execute();
  await tdb.sql`select pg_notify(${CANCEL_CHANNEL}, ${id})`;
  const { boss, worker } = await startTestWorker(t, tdb, { queues: ['backtest'], collectors: source });
  t.equal(await jobStateEventually(boss, 'backtest', id, 'failed'), 'failed', 'the job ends without running to completion');
  t.same(worker.running(), []);
  t.ok(source.reads < 40, `stopped after ${source.reads} of 40 reads`);
  await new Promise((r) => setTimeout(r, 1500));
  t.match(await getRun(tdb, id), { state: 'cancelled', attempts: 0, started_at: null, progress: 0 }, 'the run stays as the api wrote it');
  t.equal((await boss.getJobById('backtest', id))?.retryCount, 0, 'not retried');
});

t.test('collect-prices creates one fetch-candles run and job per exchange x symbol x timeframe', async (t) => {
  const tdb = await createTestDatabase(t);
  const { boss } = await startTestWorker(t, tdb, { queues: ['collect-prices'] });
  const id = await publishRun(tdb.db, boss, {
    job: 'collect-prices',
    params: { exchanges: ['upbit', 'kis'], symbols: ['KRW-BTC', 'KRW-ETH'], timeframes: ['1D', '1H'], daysBack: 3 },
    trigger: 'schedule',
    scheduleId: 7,
    scheduledFor: new Date(),
  });
  const run = await waitForRun(tdb, id, finished);
  t.equal(run.state, 'completed');
  t.match(run.result, { children: 8 });
  const children = await tdb.db.selectFrom('wombat.runs').selectAll().where('parent_id', '=', id).execute();
  t.equal(children.length, 8);
  const combos = children.map((c) => {
    const p = c.params as { exchange: string; symbol: string; timeframe: string; daysBack: number };
    t.equal(p.daysBack, 3);
    t.equal(c.trigger, 'fanout');
    t.equal(c.job, 'fetch-candles');
    return `${p.exchange}/${p.symbol}/${p.timeframe}`;
  });
  t.equal(new Set(combos).size, 8);
  for (const c of children) t.equal((await boss.getJobById('fetch-candles', c.id))?.state, 'created', 'each child has its job');

  // A retry of the parent (its worker died after the commit) creates no second set of children.
  const again = await collectPrices(
    { runId: id, job: 'collect-prices', params: run.params as JobParams<'collect-prices'>, attempt: 2, signal: new AbortController().signal, progress: () => {}, log: tdb.log },
    { db: tdb.db, boss, defaultExchanges: ['upbit'], log: tdb.log },
  );
  t.match(again, { children: 8, alreadyCreated: true });
  t.equal((await tdb.db.selectFrom('wombat.runs').select('id').where('parent_id', '=', id).execute()).length, 8);
});

t.test('two workers drain one queue together and run each job once', async (t) => {
  const tdb = await createTestDatabase(t);
  const a = await startTestWorker(t, tdb, { queues: ['canary'], batchSize: 20 });
  await startTestWorker(t, tdb, { queues: ['canary'], batchSize: 20 });
  const ids = await tdb.db.transaction().execute(async (trx) => {
    const out: string[] = [];
    for (let i = 0; i < 200; i++) out.push(await insertRunAndSend(trx, a.boss, { job: 'canary', params: {}, trigger: 'script' }));
    return out;
  });
  const deadline = Date.now() + 15_000;
  let rows = await tdb.db.selectFrom('wombat.runs').select(['state', 'attempts']).execute();
  while (rows.some((r) => r.state !== 'completed') && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    rows = await tdb.db.selectFrom('wombat.runs').select(['state', 'attempts']).execute();
  }
  t.equal(rows.length, ids.length);
  t.same(new Set(rows.map((r) => `${r.state}/${r.attempts}`)), new Set(['completed/1']));
});

t.test('a retry of a run an earlier attempt completed settles its job without running the handler again', async (t) => {
  const tdb = await createTestDatabase(t);
  const first = await startBoss({ url: tdb.url, role: 'worker', log: tdb.log, poolSize: 2 });
  t.teardown(() => first.stop({ graceful: false, close: true }));
  const id = await publishRun(tdb.db, first, { job: 'canary', params: { sleep_ms: 1 }, trigger: 'task', retryLimit: 2, retryDelaySeconds: 0 });
  const [job] = await first.fetch('canary', { batchSize: 1 });
  t.equal(job?.id, id);
  // Attempt 1 ran elsewhere and its result landed; then pg-boss claimed the job again (its expiry
  // passed while the database was away, before the result reached it).
  const at = new Date().toISOString();
  await applyAttemptUpdates(tdb.sql, [{ id, attempts: 1, state: 'running', attemptStartedAt: at }]);
  await applyAttemptUpdates(tdb.sql, [{ id, attempts: 1, state: 'completed', attemptStartedAt: at, result: { attempt: 1 }, finishedAt: at }]);
  await sql`update pgboss.job set state = 'retry', completed_on = null, start_after = now() where id = ${id}`.execute(tdb.db);

  let calls = 0;
  await startTestWorker(t, tdb, { queues: ['canary'], handlers: { canary: async () => ({ attempt: ++calls + 1 }) } });
  t.equal(await jobStateEventually(first, 'canary', id, 'completed'), 'completed', 'the job is completed, agreeing with the run');
  t.equal(calls, 0, 'the handler did not run again');
  t.match(await getRun(tdb, id), { state: 'completed', attempts: 1, result: { attempt: 1 } });
  const kept = await sql<{ attempt: number; state: string }>`select attempt, state from wombat.superseded_attempts where run_id = ${id}`.execute(tdb.db);
  t.same(kept.rows, [{ attempt: 2, state: 'running' }], 'the refused start is kept');
});

t.test('completions whose settlement pg-boss lost are settled once the database takes them, even after pg-boss failed the job', async (t) => {
  const tdb = await createTestDatabase(t);
  // The database refuses to end any job (as it does while it is away), except through the test's
  // own stand-in for pg-boss's expiry below.
  // pg-boss completes a job by an update and fails it by a delete and an insert.
  await sql`create function pgboss.refuse_settle() returns trigger language plpgsql as $$ begin
      if old.state = 'active' and (tg_op = 'DELETE' or new.state <> 'active') and current_setting('wombat_test.allow', true) is distinct from 'on' then
        raise exception 'the database is away';
      end if;
      return case when tg_op = 'DELETE' then old else new end;
    end $$`.execute(tdb.db);
  await sql`create trigger refuse_settle before update or delete on pgboss.job for each row execute function pgboss.refuse_settle()`.execute(tdb.db);
  // Told apart by their sleep: 1 ms the job pg-boss keeps active, 2 ms the one it fails.
  const calls = new Map<number, number>();
  const { boss } = await startTestWorker(t, tdb, {
    queues: ['canary'],
    handlers: {
      canary: async ({ params }) => {
        const n = (calls.get(params.sleep_ms ?? 0) ?? 0) + 1;
        calls.set(params.sleep_ms ?? 0, n);
        return { calls: n };
      },
    },
  });
  const kept = await publishRun(tdb.db, boss, { job: 'canary', params: { sleep_ms: 1 }, trigger: 'task', retryLimit: 0 });
  const expired = await publishRun(tdb.db, boss, { job: 'canary', params: { sleep_ms: 2 }, trigger: 'task', retryLimit: 0 });
  for (const id of [kept, expired]) t.match(await waitForRun(tdb, id, finished), { state: 'completed', attempts: 1 }, 'the run history says completed');
  await new Promise((r) => setTimeout(r, 500));
  const states = await sql<{ id: string; state: string }>`select id, state::text from pgboss.job where id in (${kept}, ${expired})`.execute(tdb.db);
  t.same(new Set(states.rows.map((r) => r.state)), new Set(['active']), 'pg-boss could not settle either job');
  // pg-boss's monitor fails one of them, as it does once the database returns and the job's
  // heartbeat is older than its limit.
  await tdb.db.transaction().execute(async (trx) => {
    await sql`select set_config('wombat_test.allow', 'on', true)`.execute(trx);
    await sql`update pgboss.job set state = 'failed', completed_on = now(), output = '{"message":"job heartbeat expired"}' where id = ${expired}`.execute(trx);
  });
  await sql`drop trigger refuse_settle on pgboss.job`.execute(tdb.db);
  for (const id of [kept, expired]) t.equal(await jobStateEventually(boss, 'canary', id, 'completed', 10_000), 'completed', 'the job is completed, agreeing with the run');
  t.same([...calls].sort(), [[1, 1], [2, 1]], 'each handler ran once');
  t.match(await getRun(tdb, expired), { state: 'completed', attempts: 1, result: { calls: 1 } });
});
