/**
 * Candles per second collected against the exchanges' stated budgets, through
 * the real clients and the fake exchange enforcing those budgets.
 *
 *   npm run bench -w packages/collectors     (or: node bench/collect-throughput.ts)
 *
 * Prints requests/s against the ceiling (utilisation %) and any 429/EGW00201.
 * BENCH_DAYS_BACK (default 7): days of Upbit minute candles per market; BENCH_KIS_FROM
 * (default 2015-01-01): first day of the KIS daily candles.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '@wombat/core/platform';
import { createCollectors } from '@wombat/collectors';
import { startFakeExchange } from '@wombat/collectors/testing';

/** Most requests a limit of `perSecond` in any 1 s window admits in `seconds` (a burst at the start, then steady). */
const budget = (perSecond: number, seconds: number) => perSecond * (Math.floor(seconds) + 1);

const log = createLogger({ name: 'bench', level: 'warn', format: 'json' });
const dataRoot = await mkdtemp(path.join(tmpdir(), 'wombat-bench-'));
const NOW = new Date('2026-06-01T00:00:00Z');
const DAYS_BACK = Number(process.env.BENCH_DAYS_BACK ?? 7);
const KIS_FROM = process.env.BENCH_KIS_FROM ?? '2015-01-01';
const fake = await startFakeExchange({ now: () => NOW, kis: { accountType: 'real' } });

try {
  const c = createCollectors({
    dataRoot,
    storage: 'parquet',
    upbit: { baseUrl: fake.url, requestsPerSecond: 10 },
    kis: { baseUrl: fake.url, appKey: 'bench', appSecret: 'bench', accountType: 'real' },
    log,
    now: () => NOW,
  });

  // Upbit: three markets backfilled at once share one 10/s candle budget.
  {
    const started = performance.now();
    const results = await Promise.all(
      ['KRW-BTC', 'KRW-ETH', 'KRW-GAP'].map((symbol) => c.fetchCandles({ exchange: 'upbit', symbol, timeframe: '1m', daysBack: DAYS_BACK }, {})),
    );
    const seconds = (performance.now() - started) / 1000;
    const requests = results.reduce((a, r) => a + r.requests, 0);
    const candles = results.reduce((a, r) => a + r.fetched, 0);
    const ceiling = 10;
    console.log(`upbit: ${candles} candles in ${seconds.toFixed(2)} s = ${(candles / seconds).toFixed(0)} candles/s`);
    console.log(`upbit: ${requests} requests = ${(requests / seconds).toFixed(2)} req/s; budget ${ceiling}/s allows ${budget(ceiling, seconds)} in that time: utilisation ${((100 * requests) / budget(ceiling, seconds)).toFixed(1)}%`);
    console.log(`upbit: candle ceiling ${ceiling * 200} candles/s (200 a request); 429 answers: ${fake.requests.upbit.byStatus[429] ?? 0}`);
  }

  // KIS: daily candles of several symbols against 18 requests/s per app key.
  {
    const started = performance.now();
    const symbols = ['005930', '000660', '091990'];
    const results = await Promise.all(symbols.map((symbol) => c.fetchCandles({ exchange: 'kis', symbol, timeframe: '1D', from: `${KIS_FROM}T00:00:00Z` }, {})));
    const seconds = (performance.now() - started) / 1000;
    const requests = results.reduce((a, r) => a + r.requests, 0);
    const candles = results.reduce((a, r) => a + r.fetched, 0);
    console.log(`kis: ${candles} candles in ${seconds.toFixed(2)} s = ${(candles / seconds).toFixed(0)} candles/s`);
    console.log(`kis: ${requests} requests (+1 token) = ${(requests / seconds).toFixed(2)} req/s; budget 18/s allows ${budget(18, seconds)} in that time: utilisation ${((100 * requests) / budget(18, seconds)).toFixed(1)}%`);
    console.log(`kis: EGW00201 answers: ${fake.requests.kis.byStatus[500] ?? 0}`);
  }
  await c.close();
} finally {
  await fake.close();
  await rm(dataRoot, { recursive: true, force: true });
}
