import t from 'tap';
import { startTestApi } from './helpers.ts';

/**
 * The Data page's per-series figures come from wombat.candle_series, kept by
 * triggers on wombat.candles, so a page open in many tabs never counts the
 * candles table.
 */
const api = await startTestApi(t);
const sql = api.database.sql;

/** The figures kept, and the figures the candles themselves give: they must agree after every write. */
async function agree(t: { same(a: unknown, b: unknown, m: string): void }, what: string) {
  const kept = await sql`select exchange, symbol, timeframe, first_time, last_time, candles::int as n from wombat.candle_series order by 1, 2, 3`;
  const counted = await sql`select exchange, symbol, timeframe, min(time) as first_time, max(time) as last_time, count(*)::int as n from wombat.candles group by 1, 2, 3 order by 1, 2, 3`;
  t.same(kept, counted, what);
}

const insert = (symbol: string, from: string, to: string) => sql`
  insert into wombat.candles (exchange, symbol, timeframe, time, open, high, low, close, volume, quote_volume)
  select 'upbit', ${symbol}, '1D', ts, 1, 1, 1, 1, 1, 1 from generate_series(${from}::timestamptz, ${to}::timestamptz, interval '1 day') ts
  on conflict (exchange, symbol, timeframe, time) do update set close = excluded.close + 1, updated_at = now()`;

t.test('per-series figures follow inserts, upserts, deletes, moved rows and truncation', async (t) => {
  await insert('KRW-BTC', '2026-01-01', '2026-01-10');
  await insert('KRW-ETH', '2026-02-01', '2026-02-03');
  await agree(t, 'after inserts');
  await insert('KRW-BTC', '2026-01-05', '2026-01-20');
  await agree(t, 'after an upsert that updates some rows and adds others');
  await sql`delete from wombat.candles where symbol = 'KRW-BTC' and time < '2026-01-03'`;
  await agree(t, 'after deleting the first candles');
  await sql`delete from wombat.candles where symbol = 'KRW-BTC' and time > '2026-01-18'`;
  await agree(t, 'after deleting the last candles');
  await sql`update wombat.candles set symbol = 'KRW-XRP' where symbol = 'KRW-ETH' and time = '2026-02-02'`;
  await agree(t, 'after moving a row to another series');
  await sql`update wombat.candles set time = time + interval '1 year' where symbol = 'KRW-XRP'`;
  await agree(t, 'after moving a row in time');
  await sql`delete from wombat.candles where symbol = 'KRW-XRP'`;
  await agree(t, 'after a series lost its last candle');
  t.same((await sql`select symbol from wombat.candle_series order by 1`).map((r) => r.symbol), ['KRW-BTC', 'KRW-ETH']);
  await sql`truncate wombat.candles`;
  await agree(t, 'after truncation');
});

t.test('GET /api/data/series answers from the kept figures, without reading the candles table', async (t) => {
  await insert('KRW-BTC', '2026-01-01', '2026-01-10');
  // Another transaction holds the candles table exclusively: anything that reads it waits.
  const locker = await sql.reserve();
  t.teardown(() => locker.release());
  await locker`begin`;
  await locker`lock table wombat.candles in access exclusive mode`;
  try {
    const res = await fetch(`${api.url}/api/data/series`, { signal: AbortSignal.timeout(5_000) });
    t.equal(res.status, 200, 'answered while the candles table is locked');
    const body = (await res.json()) as { series: { symbol: string; count: number; first: string; last: string; missing: number }[] };
    t.match(body.series, [{ symbol: 'KRW-BTC', count: 10, first: '2026-01-01T00:00:00.000Z', last: '2026-01-10T00:00:00.000Z', missing: 0 }]);
  } finally {
    await locker`rollback`;
  }
});
