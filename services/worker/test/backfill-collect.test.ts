import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCollectors } from '@wombat/collectors';
import { startFakeExchange } from '@wombat/collectors/testing';
import { backfillSchedule, publishRun, type Run } from '@wombat/core/runs';
import { insertSchedule, validateScheduleInput } from '@wombat/core/schedules';
import { createTestDatabase } from '@wombat/core/testing';
import { startTestEngine, startTestWorker, waitForRun } from './fixtures/harness.ts';

/**
 * Collection jobs take a logical period: a backfilled occurrence collects what it would have
 * collected at its instant (the fake exchange serves every past day), not today's data.
 */
const DAY_MS = 86_400_000;
const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
const day = (i: number) => new Date(today + i * DAY_MS);
const ended = (r: Run) => ['completed', 'failed', 'cancelled'].includes(r.state);

async function setup(t: { teardown(fn: () => unknown): void }) {
  const tdb = await createTestDatabase(t);
  const exchange = await startFakeExchange();
  t.teardown(() => exchange.close());
  const dataRoot = await mkdtemp(path.join(tmpdir(), 'wombat-backfill-collect-'));
  t.teardown(() => rm(dataRoot, { recursive: true, force: true }));
  const collectors = createCollectors({ db: tdb.db, dataRoot, storage: 'parquet', upbit: { baseUrl: exchange.url }, log: tdb.log, requestTimeoutMs: 30_000 });
  t.teardown(() => collectors.close());
  const { boss } = await startTestWorker(t, tdb, { queues: ['fetch-candles', 'collect-prices', 'collect-symbols'], collectors });
  return { tdb, collectors, boss, exchange };
}

t.test('a backfill of daily candles collects each occurrence\'s own day, not today\'s candles', async (t) => {
  const { tdb, collectors, boss } = await setup(t);
  await startTestEngine(t, tdb, 'engine');
  const def = validateScheduleInput({ name: 'btc-daily', job: 'fetch-candles', cron: '0 0 * * *', timezone: 'UTC', params: { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D' } });
  if (!def.ok) throw new Error(def.problems.join('; '));
  const s = await insertSchedule(tdb.db, def.value);
  const answer = await backfillSchedule(tdb.db, boss, s, { from: day(-10).toISOString().slice(0, 10), to: day(-7).toISOString().slice(0, 10), concurrency: 2 });
  const parent = await waitForRun(tdb, answer.runId!, ended, 30_000);
  t.equal(parent.state, 'completed', JSON.stringify(parent.error));
  const kids = await tdb.db.selectFrom('wombat.runs').selectAll().where('parent_id', '=', parent.id).orderBy('scheduled_for').execute();
  t.equal(kids.length, 3, 'occurrences at midnight of days -10, -9 and -8');
  for (const [i, k] of kids.entries()) {
    t.same((k.params as { period: unknown }).period, { from: day(-11 + i).toISOString(), to: day(-10 + i).toISOString() }, `child ${i}: the day before its occurrence`);
    t.match(k.result, { fetched: 1, written: 1 }, `child ${i} collected one daily candle`);
  }
  const stored = await collectors.readCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D', from: day(-60), to: day(1) });
  t.same(
    stored.map((c) => c.time.toISOString()),
    [day(-11), day(-10), day(-9)].map((d) => d.toISOString()),
    'the store holds exactly the three backfilled days, nothing of today',
  );
});

t.test('collect-symbols records its period and says the lists are of now; collect-prices hands its period to each child', async (t) => {
  const { tdb, boss } = await setup(t);
  const period = { from: day(-3).toISOString(), to: day(-2).toISOString() };
  const symbols = await waitForRun(tdb, await publishRun(tdb.db, boss, { job: 'collect-symbols', params: { exchanges: ['upbit'], period }, trigger: 'manual' }), ended);
  t.equal(symbols.state, 'completed', JSON.stringify(symbols.error));
  t.match(symbols.result, { period, note: /as of the run, not of the period/ });

  const prices = await waitForRun(
    tdb,
    await publishRun(tdb.db, boss, { job: 'collect-prices', params: { exchanges: ['upbit'], symbols: ['KRW-BTC', 'KRW-ETH'], timeframes: ['1D'], period }, trigger: 'manual' }),
    ended,
  );
  t.equal(prices.state, 'completed', JSON.stringify(prices.error));
  const kids = await tdb.db.selectFrom('wombat.runs').selectAll().where('parent_id', '=', prices.id).execute();
  t.equal(kids.length, 2);
  t.same(kids.map((k) => (k.params as { period: unknown }).period), [period, period], 'every fetch-candles child carries the period');
  for (const k of kids) await waitForRun(tdb, k.id, ended, 20_000);
  const done = await tdb.db.selectFrom('wombat.runs').selectAll().where('parent_id', '=', prices.id).execute();
  t.same(done.map((k) => k.state), ['completed', 'completed']);
  t.ok(done.every((k) => (k.result as { fetched: number }).fetched === 1), 'each child collected the one day of the period');
});
