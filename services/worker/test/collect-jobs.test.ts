import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCollectors } from '@wombat/collectors';
import { startFakeExchange } from '@wombat/collectors/testing';
import type { JobParams } from '@wombat/core/jobs';
import { publishRun } from '@wombat/core/runs';
import { createTestDatabase, type TestDatabase } from '@wombat/core/testing';
import { finished, startTestWorker, waitForRun } from './fixtures/harness.ts';

async function setup(t: { teardown(fn: () => unknown): void }, queues: ('fetch-candles' | 'collect-prices' | 'collect-symbols')[]) {
  const tdb: TestDatabase = await createTestDatabase(t);
  const exchange = await startFakeExchange();
  t.teardown(() => exchange.close());
  const dataRoot = await mkdtemp(path.join(tmpdir(), 'wombat-worker-'));
  t.teardown(() => rm(dataRoot, { recursive: true, force: true }));
  const collectors = createCollectors({ db: tdb.db, dataRoot, storage: 'parquet', upbit: { baseUrl: exchange.url }, log: tdb.log, requestTimeoutMs: 30_000 });
  t.teardown(() => collectors.close());
  const { boss, worker } = await startTestWorker(t, tdb, { queues, collectors });
  return { tdb, exchange, collectors, boss, worker };
}

const DAY_MS = 86_400_000;

t.test('fetch-candles collects from the exchange into Parquet and records the result', async (t) => {
  const { tdb, collectors, boss } = await setup(t, ['fetch-candles']);
  const params: JobParams<'fetch-candles'> = { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D', daysBack: 5 };
  const id = await publishRun(tdb.db, boss, { job: 'fetch-candles', params, trigger: 'manual' });
  const run = await waitForRun(tdb, id, finished);
  t.equal(run.state, 'completed', run.error ? JSON.stringify(run.error) : 'completed');
  t.match(run.result, { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D' });
  const written = (run.result as { written: number }).written;
  t.ok(written >= 4 && written <= 6, `wrote ${written} daily candles`);
  const stored = await collectors.readCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D', from: new Date(Date.now() - 10 * DAY_MS), to: new Date() });
  t.equal(stored.length, written);
});

t.test('a stalled exchange call is aborted by the job timeout', async (t) => {
  const { tdb, exchange, boss, worker } = await setup(t, ['fetch-candles']);
  exchange.upbit.inject('timeout', 5);
  const params: JobParams<'fetch-candles'> = { exchange: 'upbit', symbol: 'KRW-ETH', timeframe: '1D', daysBack: 5 };
  const started = Date.now();
  const id = await publishRun(tdb.db, boss, { job: 'fetch-candles', params, trigger: 'manual', timeoutSeconds: 1, retryLimit: 0 });
  const run = await waitForRun(tdb, id, finished);
  t.equal(run.state, 'failed');
  t.match(run.error, { code: 'timeout' });
  t.ok(Date.now() - started < 10_000, 'well before the 30 s request deadline');
  t.same(worker.running(), []);
});

t.test('collect-prices lists symbols from the exchange and every child job completes', async (t) => {
  const { tdb, exchange, boss } = await setup(t, ['collect-prices', 'fetch-candles']);
  const id = await publishRun(tdb.db, boss, { job: 'collect-prices', params: { exchanges: ['upbit'], timeframes: ['1D'], daysBack: 2 }, trigger: 'manual' });
  const parent = await waitForRun(tdb, id, finished);
  t.equal(parent.state, 'completed', parent.error ? JSON.stringify(parent.error) : 'completed');
  const markets = exchange.upbit.markets.length;
  t.match(parent.result, { children: markets });
  const deadline = Date.now() + 20_000;
  let children = await tdb.db.selectFrom('wombat.runs').selectAll().where('parent_id', '=', id).execute();
  while (children.some((c) => !finished(c)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    children = await tdb.db.selectFrom('wombat.runs').selectAll().where('parent_id', '=', id).execute();
  }
  t.equal(children.length, markets);
  t.same(children.map((c) => c.state), children.map(() => 'completed'));
  t.same(new Set(children.map((c) => (c.params as { symbol: string }).symbol)), new Set(exchange.upbit.markets.map((m) => m.symbol)));
});

t.test('collect-prices children carry the parent schedule, so its overlap policy and history cover them', async (t) => {
  const { tdb, boss } = await setup(t, ['collect-prices', 'fetch-candles']);
  const [schedule] = await tdb.sql<{ id: string }[]>`insert into wombat.schedules (name, job, kind, cron) values ('prices-test', 'collect-prices', 'cron', '2 0 * * *') returning id`;
  const scheduleId = Number(schedule!.id);
  const id = await publishRun(tdb.db, boss, {
    job: 'collect-prices',
    params: { exchanges: ['upbit'], symbols: ['KRW-BTC', 'KRW-ETH'], timeframes: ['1D'], daysBack: 2 },
    trigger: 'schedule',
    scheduleId,
    scheduledFor: new Date(),
  });
  const parent = await waitForRun(tdb, id, finished);
  t.equal(parent.state, 'completed', parent.error ? JSON.stringify(parent.error) : 'completed');
  const children = await tdb.db.selectFrom('wombat.runs').select(['schedule_id', 'trigger']).where('parent_id', '=', id).execute();
  t.equal(children.length, 2);
  t.same(children.map((c) => [Number(c.schedule_id), c.trigger]), [[scheduleId, 'fanout'], [scheduleId, 'fanout']]);
});
