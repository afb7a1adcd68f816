import type { Sql } from '@wombat/core/platform';
import { missingPeriods } from '@wombat/core/jobs';

export interface SeriesRow {
  exchange: string;
  symbol: string;
  timeframe: string;
  first: string | null;
  last: string | null;
  count: number;
  missing: number | null;
  last_collected_at: string | null;
  last_run_id: string | null;
  last_run_state: string | null;
  last_run_written: number | null;
}

/** The finished fetch-candles runs of index runs_fetch_candles_series (migration 0018). */
const FETCHES_SQL = `job = 'fetch-candles' and state in ('completed', 'failed')
  and params->>'exchange' is not null and params->>'symbol' is not null and params->>'timeframe' is not null`;

const iso = (d: Date | null | undefined) => (d ? new Date(d).toISOString() : null);

/**
 * What is stored per exchange, symbol and timeframe (the candles mirrored in
 * PostgreSQL, as wombat.candle_series keeps their figures) and when each series was last collected (its latest finished
 * fetch-candles run, when it was created in the last 90 days, whatever the storage).
 */
export async function listSeries(sql: Sql): Promise<SeriesRow[]> {
  const FETCHES = sql.unsafe(FETCHES_SQL);
  const [stored, runs] = await Promise.all([
    // Kept by triggers on wombat.candles (migration 0010): one row per series, never a scan of the candles.
    sql<{ exchange: string; symbol: string; timeframe: string; first: Date; last: Date; n: number }[]>`
      select exchange, symbol, timeframe, first_time as first, last_time as last, candles::float8 as n
      from wombat.candle_series`,
    // Each series once, by skipping through index runs_fetch_candles_series (a recursive walk from
    // one series to the next), then its latest finished run: a few index probes a series,
    // however many runs each series has.
    sql<{ exchange: string; symbol: string; timeframe: string; finished_at: Date | null; id: string; state: string; written: number | null }[]>`
      with recursive series as (
        (select params->>'exchange' as exchange, params->>'symbol' as symbol, params->>'timeframe' as timeframe from wombat.runs
         where ${FETCHES} order by 1, 2, 3 limit 1)
        union all
        select n.* from series s cross join lateral (
          select params->>'exchange', params->>'symbol', params->>'timeframe' from wombat.runs
          where ${FETCHES} and (params->>'exchange', params->>'symbol', params->>'timeframe') > (s.exchange, s.symbol, s.timeframe)
          order by 1, 2, 3 limit 1) n
      )
      select s.exchange, s.symbol, s.timeframe, r.finished_at, r.id, r.state, (r.result->>'written')::int as written
      from series s cross join lateral (
        select finished_at, id, state, result, created_at from wombat.runs
        where ${FETCHES} and params->>'exchange' = s.exchange and params->>'symbol' = s.symbol and params->>'timeframe' = s.timeframe
        order by finished_at desc nulls last limit 1) r
      where r.created_at > now() - interval '90 days'`,
  ]);
  const key = (r: { exchange: string; symbol: string; timeframe: string }) => `${r.exchange}\u0000${r.symbol}\u0000${r.timeframe}`;
  const out = new Map<string, SeriesRow>();
  for (const s of stored) {
    out.set(key(s), {
      exchange: s.exchange,
      symbol: s.symbol,
      timeframe: s.timeframe,
      first: iso(s.first),
      last: iso(s.last),
      count: s.n,
      missing: missingPeriods(s.exchange, s.timeframe, new Date(s.first), new Date(s.last), s.n),
      last_collected_at: null,
      last_run_id: null,
      last_run_state: null,
      last_run_written: null,
    });
  }
  for (const r of runs) {
    if (!r.exchange || !r.symbol || !r.timeframe) continue;
    const row = out.get(key(r)) ?? {
      exchange: r.exchange, symbol: r.symbol, timeframe: r.timeframe, first: null, last: null, count: 0, missing: null,
      last_collected_at: null, last_run_id: null, last_run_state: null, last_run_written: null,
    };
    row.last_collected_at = iso(r.finished_at);
    row.last_run_id = r.id;
    row.last_run_state = r.state;
    row.last_run_written = r.written;
    out.set(key(r), row);
  }
  return [...out.values()].sort((a, b) => key(a).localeCompare(key(b)));
}

export async function readCandles(sql: Sql, q: { exchange: string; symbol: string; timeframe: string; limit: number }) {
  const rows = await sql<{ time: Date; open: number; high: number; low: number; close: number; volume: number }[]>`
    select time, open, high, low, close, volume from wombat.candles
    where exchange = ${q.exchange} and symbol = ${q.symbol} and timeframe = ${q.timeframe}
    order by time desc limit ${q.limit}`;
  return rows.reverse().map((r) => ({ time: new Date(r.time).toISOString(), open: r.open, high: r.high, low: r.low, close: r.close, volume: r.volume }));
}
