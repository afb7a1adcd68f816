import { sql, type Generated, type Kysely } from 'kysely';
import type { Exchange } from '@wombat/core/jobs';
import type { Candle } from './candle.ts';
import type { SeriesKey } from './parquet-store.ts';

/** Tables of migrations/0003_collectors.sql (0006_exchange_budgets.sql reworks kis_tokens). */
export interface CandlesTable {
  exchange: string;
  symbol: string;
  timeframe: string;
  time: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  quote_volume: number;
  updated_at: Generated<Date>;
}

export interface SymbolsTable {
  exchange: string;
  symbol: string;
  name: string;
  english_name: string | null;
  market: string;
  active: Generated<boolean>;
  first_seen: Generated<Date>;
  last_seen: Generated<Date>;
  delisted_at: Date | null;
  updated_at: Generated<Date>;
}

export interface KisTokensTable {
  key_hash: string;
  token: string;
  issued_at: Date;
  expires_at: Date;
  updated_at: Generated<Date>;
}

export interface CollectorTables {
  'wombat.candles': CandlesTable;
  'wombat.symbols': SymbolsTable;
  'wombat.kis_tokens': KisTokensTable;
}

export type CollectorDb = Kysely<CollectorTables>;

const BATCH_ROWS = 2000;

/**
 * Stores candles in one transaction: all or nothing. Without overwrite stored
 * rows are kept; with overwrite the rows in [rangeFrom, rangeTo) are replaced.
 * Returns the rows inserted or changed.
 */
export async function upsertCandles(db: CollectorDb, key: SeriesKey, candles: Candle[], opts: { overwrite: boolean; rangeFrom?: Date; rangeTo?: Date }): Promise<number> {
  return db.transaction().execute(async (trx) => {
    if (opts.overwrite && opts.rangeFrom && opts.rangeTo) {
      await trx
        .deleteFrom('wombat.candles')
        .where('exchange', '=', key.exchange)
        .where('symbol', '=', key.symbol)
        .where('timeframe', '=', key.timeframe)
        .where('time', '>=', opts.rangeFrom)
        .where('time', '<', opts.rangeTo)
        .execute();
    }
    let written = 0;
    for (let i = 0; i < candles.length; i += BATCH_ROWS) {
      const rows = candles.slice(i, i + BATCH_ROWS).map((c) => ({
        exchange: key.exchange,
        symbol: key.symbol,
        timeframe: key.timeframe,
        time: c.time,
        open: c.open,
        high: c.high,
        low: c.low,
        close: c.close,
        volume: c.volume,
        quote_volume: c.quoteVolume,
      }));
      const q = trx.insertInto('wombat.candles').values(rows);
      const res = opts.overwrite
        ? await q
            .onConflict((oc) =>
              oc.columns(['exchange', 'symbol', 'timeframe', 'time']).doUpdateSet((eb) => ({
                open: eb.ref('excluded.open'),
                high: eb.ref('excluded.high'),
                low: eb.ref('excluded.low'),
                close: eb.ref('excluded.close'),
                volume: eb.ref('excluded.volume'),
                quote_volume: eb.ref('excluded.quote_volume'),
                updated_at: sql<Date>`now()`,
              })),
            )
            .executeTakeFirst()
        : await q.onConflict((oc) => oc.doNothing()).executeTakeFirst();
      written += Number(res.numInsertedOrUpdatedRows ?? 0);
    }
    return written;
  });
}

export async function readCandlesPg(db: CollectorDb, key: SeriesKey, from: Date, to: Date): Promise<Candle[]> {
  const rows = await db
    .selectFrom('wombat.candles')
    .select(['time', 'open', 'high', 'low', 'close', 'volume', 'quote_volume'])
    .where('exchange', '=', key.exchange)
    .where('symbol', '=', key.symbol)
    .where('timeframe', '=', key.timeframe)
    .where('time', '>=', from)
    .where('time', '<', to)
    .orderBy('time')
    .execute();
  return rows.map((r) => ({ time: new Date(r.time), open: r.open, high: r.high, low: r.low, close: r.close, volume: r.volume, quoteVolume: r.quote_volume }));
}

export async function lastStoredPg(db: CollectorDb, key: SeriesKey): Promise<Date | undefined> {
  const row = await db
    .selectFrom('wombat.candles')
    .select((eb) => eb.fn.max('time').as('last'))
    .where('exchange', '=', key.exchange)
    .where('symbol', '=', key.symbol)
    .where('timeframe', '=', key.timeframe)
    .executeTakeFirst();
  return row?.last ? new Date(row.last) : undefined;
}

export interface ListedSymbol {
  symbol: string;
  name: string;
  englishName?: string;
  market: string;
}

/**
 * Brings the symbols table in line with an exchange's current list, in one
 * transaction: new symbols are added, changed names recorded as renames, and
 * symbols no longer listed are marked inactive (delisted), never deleted.
 */
export async function syncSymbols(db: CollectorDb, exchange: Exchange, listed: ListedSymbol[], now: Date): Promise<{ total: number; added: number; renamed: number; delisted: number }> {
  return db.transaction().execute(async (trx) => {
    const stored = await trx.selectFrom('wombat.symbols').selectAll().where('exchange', '=', exchange).forUpdate().execute();
    const byCode = new Map(stored.map((s) => [s.symbol, s]));
    let added = 0;
    let renamed = 0;
    const seen = new Map<string, ListedSymbol>();
    for (const s of listed) {
      if (seen.has(s.symbol)) continue;
      seen.set(s.symbol, s);
      const prior = byCode.get(s.symbol);
      if (!prior || !prior.active) added++;
      else if (prior.name !== s.name) renamed++;
    }
    const rows = [...seen.values()];
    for (let i = 0; i < rows.length; i += BATCH_ROWS) {
      await trx
        .insertInto('wombat.symbols')
        .values(
          rows.slice(i, i + BATCH_ROWS).map((s) => ({
            exchange,
            symbol: s.symbol,
            name: s.name,
            english_name: s.englishName ?? null,
            market: s.market,
            active: true,
            first_seen: now,
            last_seen: now,
            delisted_at: null,
            updated_at: now,
          })),
        )
        .onConflict((oc) =>
          oc.columns(['exchange', 'symbol']).doUpdateSet((eb) => ({
            name: eb.ref('excluded.name'),
            english_name: eb.ref('excluded.english_name'),
            market: eb.ref('excluded.market'),
            active: true,
            last_seen: eb.ref('excluded.last_seen'),
            delisted_at: null,
            updated_at: eb.ref('excluded.updated_at'),
          })),
        )
        .execute();
    }
    const gone = stored.filter((s) => s.active && !seen.has(s.symbol)).map((s) => s.symbol);
    if (gone.length > 0) {
      await trx
        .updateTable('wombat.symbols')
        .set({ active: false, delisted_at: now, updated_at: now })
        .where('exchange', '=', exchange)
        .where('symbol', 'in', gone)
        .execute();
    }
    return { total: seen.size, added, renamed, delisted: gone.length };
  });
}

export async function activeSymbols(db: CollectorDb, exchange: Exchange, market?: string): Promise<string[]> {
  let q = db.selectFrom('wombat.symbols').select('symbol').where('exchange', '=', exchange).where('active', '=', true);
  if (market) q = q.where('market', '=', market);
  const rows = await q.orderBy('symbol').execute();
  return rows.map((r) => r.symbol);
}
