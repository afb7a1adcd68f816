import t from 'tap';
import { stat } from 'node:fs/promises';
import { PermanentError } from '@wombat/core/platform';
import { createTestDatabase } from '@wombat/core/testing';
import { parquetPath, readColumns, writeCandlesParquet } from '@wombat/collectors';
import { collectorsFor, fakeExchange, rows, tempDataRoot } from './helpers.ts';

const NOW = new Date('2026-06-01T12:34:56Z');
const now = () => NOW;

t.test('a year of 1H candles equals the exchange: nothing missing, duplicated or shifted; a re-run changes nothing', async (t) => {
  const fake = await fakeExchange(t, { now, upbit: { requestsPerSecond: 1000 } });
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now, upbit: { baseUrl: fake.url, requestsPerSecond: 1000 } });
  const from = new Date('2025-06-01T12:00:00Z');
  const r = await c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H', from: from.toISOString() }, {});
  const truth = fake.upbit.candles('KRW-BTC', '1H', from, NOW);
  t.equal(truth.length, 8760, 'the exchange holds 365 days of hours');
  t.equal(r.fetched, truth.length);
  t.equal(r.written, truth.length);
  t.equal(r.last, '2026-06-01T11:00:00.000Z', 'the open 12:00 candle is not stored');
  t.ok(r.requests >= 44 && r.requests <= 45, `paged 200 at a time (${r.requests} requests)`);
  const stored = await c.readCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H', from, to: NOW });
  t.same(rows(stored), rows(truth));
  const file = parquetPath(dataRoot, { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H' }, 2026);
  const before = await stat(file);
  const again = await c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H', from: from.toISOString() }, {});
  t.equal(again.written, 0, 're-run writes nothing');
  t.equal((await stat(file)).mtimeMs, before.mtimeMs, 'the file is not rewritten');
  const incremental = await c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H' }, {});
  t.equal(incremental.fetched, 0, 'incremental collection after the last stored candle finds nothing new');
});

t.test('several days of 1m candles of a gappy market equal the exchange, in both stores', async (t) => {
  const fake = await fakeExchange(t, { now, upbit: { requestsPerSecond: 1000 } });
  const dataRoot = await tempDataRoot(t);
  const db = await createTestDatabase(t);
  const c = collectorsFor(t, fake, { dataRoot, now, db: db.db, storage: 'both', upbit: { baseUrl: fake.url, requestsPerSecond: 1000 } });
  const r = await c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-GAP', timeframe: '1m', daysBack: 3 }, {});
  const from = new Date(NOW.getTime() - 3 * 86_400_000 + 4000); // aligned up to the next minute
  const truth = fake.upbit.candles('KRW-GAP', '1m', from, NOW);
  t.ok(truth.length < 3 * 1440 * 0.75, 'the market has gaps');
  t.equal(r.fetched, truth.length);
  const fromFile = await c.readCandles({ exchange: 'upbit', symbol: 'KRW-GAP', timeframe: '1m', from, to: NOW });
  t.same(rows(fromFile), rows(truth), 'parquet matches');
  const pg = await db.sql<{ n: number }[]>`select count(*)::int as n from wombat.candles where symbol = 'KRW-GAP' and timeframe = '1m'`;
  t.equal(pg[0]!.n, truth.length, 'postgres has every candle once');
});

t.test('overwrite replaces stored rows in the range; without it stored rows are kept', async (t) => {
  const fake = await fakeExchange(t, { now, upbit: { requestsPerSecond: 1000 } });
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now, upbit: { baseUrl: fake.url, requestsPerSecond: 1000 } });
  const key = { exchange: 'upbit' as const, symbol: 'KRW-ETH', timeframe: '1D' as const };
  const day = new Date('2026-05-20T00:00:00Z');
  const bogus = { time: day, open: 1, high: 1, low: 1, close: 1, volume: 1, quoteVolume: 1 };
  const stray = { ...bogus, time: new Date('2026-05-21T00:00:30Z') };
  await writeCandlesParquet(dataRoot, key, [bogus, stray], { overwrite: false });
  const params = { exchange: 'upbit' as const, symbol: 'KRW-ETH', timeframe: '1D' as const, from: '2026-05-01T00:00:00Z', to: '2026-06-01T00:00:00Z' };
  const kept = await c.fetchCandles(params, {});
  t.equal(kept.written, kept.fetched - 1, 'every candle but the stored one is written');
  let stored = await c.readCandles({ ...key, from: day, to: new Date(day.getTime() + 1) });
  t.equal(stored[0]!.close, 1, 'without overwrite the stored row stays');
  const replaced = await c.fetchCandles({ ...params, overwrite: true }, {});
  t.equal(replaced.written, 1, 'only the changed row counts as written');
  stored = await c.readCandles({ ...key, from: new Date('2026-05-01T00:00:00Z'), to: NOW });
  t.same(rows(stored), rows(fake.upbit.candles('KRW-ETH', '1D', new Date('2026-05-01T00:00:00Z'), new Date('2026-06-01T00:00:00Z'))), 'overwrite leaves exactly what the exchange has');
  const cols = await readColumns(parquetPath(dataRoot, key, 2026));
  t.equal(cols!.time.length, stored.length, 'the row that the exchange does not have is gone');
});

t.test('a market listed after the start is collected from its first candle; an unknown one fails permanently', async (t) => {
  const fake = await fakeExchange(t, { now, upbit: { requestsPerSecond: 1000 } });
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now, upbit: { baseUrl: fake.url, requestsPerSecond: 1000 } });
  const r = await c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-NEW', timeframe: '1H', daysBack: 30 }, {});
  const listed = fake.upbit.markets.find((m) => m.symbol === 'KRW-NEW')!.listedAt;
  t.equal(r.first, listed.toISOString());
  t.equal(r.fetched, fake.upbit.candles('KRW-NEW', '1H', listed, NOW).length);
  t.equal(r.requests, 1, 'one short page ends the walk');
  await t.rejects(c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-NOPE', timeframe: '1H', daysBack: 1 }, {}), PermanentError);
});

t.test('incremental collection continues from the last stored candle', async (t) => {
  let clock = new Date('2026-06-01T10:00:00Z');
  const fake = await fakeExchange(t, { now: () => clock, upbit: { requestsPerSecond: 1000 } });
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now: () => clock, upbit: { baseUrl: fake.url, requestsPerSecond: 1000 } });
  const first = await c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '15m', daysBack: 1 }, {});
  t.equal(first.last, '2026-06-01T09:45:00.000Z');
  clock = new Date('2026-06-01T12:01:00Z');
  const next = await c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '15m' }, {});
  t.equal(next.first, '2026-06-01T10:00:00.000Z');
  t.equal(next.fetched, 8);
  const all = await c.readCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '15m', from: new Date('2026-05-31T00:00:00Z'), to: clock });
  t.same(rows(all), rows(fake.upbit.candles('KRW-BTC', '15m', new Date(first.first!), clock)));
});

t.test('week and month candles start on Monday and on the 1st and equal the exchange', async (t) => {
  const fake = await fakeExchange(t, { now, upbit: { requestsPerSecond: 1000 } });
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now, upbit: { baseUrl: fake.url, requestsPerSecond: 1000 } });
  for (const timeframe of ['1W', '1M'] as const) {
    const r = await c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe, from: '2018-01-01T00:00:00Z' }, {});
    const stored = await c.readCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe, from: new Date('2018-01-01T00:00:00Z'), to: NOW });
    t.same(rows(stored), rows(fake.upbit.candles('KRW-BTC', timeframe, new Date('2018-01-01T00:00:00Z'), NOW)), `${timeframe}: ${r.fetched} candles`);
    t.ok(stored.every((k) => (timeframe === '1W' ? k.time.getUTCDay() === 1 : k.time.getUTCDate() === 1)));
  }
  t.equal((await c.readCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1M', from: new Date('2026-05-01T00:00:00Z'), to: NOW })).length, 1, 'May is closed, June is not');
});
