import { PermanentError, ValidationError, type Logger } from '@wombat/core/platform';
import { checkJobParams, type Exchange, type JobParams, type Storage, type Timeframe } from '@wombat/core/jobs';
import type { Kysely } from 'kysely';
import { addPeriods, approxPeriodMs, floorToTimeframe, sortUnique, type Candle } from './candle.ts';
import { createKisClient, type KisClient } from './kis.ts';
import { KIS_MARKETS, loadMasterZip, parseMasterZip, type KisMarket } from './kis-master.ts';
import { closedCutoffOf, KRX_SESSION_CLOSE_DEFAULT, parseSessionClose } from './market-calendar.ts';
import { lastStoredParquet, readCandlesParquet, writeCandlesParquet } from './parquet-store.ts';
import { activeSymbols, lastStoredPg, readCandlesPg, syncSymbols, upsertCandles, type CollectorDb, type ListedSymbol } from './pg-store.ts';
import { createUpbitClient, type UpbitClient } from './upbit.ts';
import { createLimiter, type Limiter, type Priority } from './rate-limit.ts';
import { createPgBudgetStore } from './budget-store.ts';
import { defaultLimiter } from './limiter-default.ts';

export interface CollectorsOptions {
  /** Needed for storage postgres|both, the shared KIS token cache and the symbols table. */
  db?: Kysely<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** The database's session address (DATABASE_SESSION_URL): Parquet file locks are held there. */
  sessionUrl?: string;
  /** Absolute path. */
  dataRoot: string;
  storage: Storage;
  upbit: { baseUrl: string; requestsPerSecond?: number; requestsPerMinute?: number; banMs?: number };
  /**
   * Request budgets and bans. With a PostgreSQL store (createPgBudgetStore) every
   * process on the database shares them; without one, this process's own.
   */
  limiter?: Limiter;
  kis?: {
    baseUrl: string;
    appKey: string;
    appSecret: string;
    accountType: 'real' | 'mock';
    requestsPerSecond?: number;
    tokenIntervalMs?: number;
    tokenRetryDelayMs?: number;
    /** URL or local path of each master zip. */
    masterUrls?: { kospi: string; kosdaq: string };
  };
  /**
   * KST time of day (HH:MM) after which a KRX trading day's candle is final and stored
   * (default 18:00, the end of after-hours trading); weeks and months close at their last weekday's.
   */
  kisSessionClose?: string;
  log: Logger;
  requestTimeoutMs?: number;
  /** Retries of one request (5xx, timeout, malformed body, 429) before the call fails. */
  retries?: number;
  /** First backoff delay; doubles with each retry. */
  retryBaseDelayMs?: number;
  now?: () => Date;
}

/** fraction in 0..1 */
export interface Progress {
  (fraction: number, message?: string): void;
}

export interface SymbolsResult {
  exchange: Exchange;
  total: number;
  added: number;
  renamed: number;
  delisted: number;
}

export interface FetchResult {
  exchange: Exchange;
  symbol: string;
  timeframe: Timeframe;
  fetched: number;
  written: number;
  first?: string;
  last?: string;
  requests: number;
}

export interface Collectors {
  collectSymbols(opts: { exchanges?: Exchange[]; signal?: AbortSignal; onProgress?: Progress }): Promise<SymbolsResult[]>;
  /** Active rows of the symbols table; fetched from the exchange when the table has none (or there is no db). */
  listSymbols(exchange: Exchange, opts?: { market?: string; signal?: AbortSignal }): Promise<string[]>;
  /** `priority` orders this process's calls of a budget; by default a few pages go first (high), a backfill last (low). */
  fetchCandles(params: JobParams<'fetch-candles'>, opts: { signal?: AbortSignal; onProgress?: Progress; priority?: Priority }): Promise<FetchResult>;
  /** Candles already stored, oldest first, UTC, with start in [from, to). */
  readCandles(q: { exchange: Exchange; symbol: string; timeframe: Timeframe; from: Date; to: Date }): Promise<Candle[]>;
  /** True when request budgets and bans are shared through PostgreSQL with every other process on it. */
  readonly budgetsShared: boolean;
  close(): Promise<void>;
}

/** Candles collected when nothing is stored yet and the job names no range. */
export const DEFAULT_BACKFILL_DAYS = 30;
const DAY_MS = 86_400_000;

export function createCollectors(opts: CollectorsOptions): Collectors {
  const now = opts.now ?? (() => new Date());
  let kisSessionCloseMinutes: number;
  try {
    kisSessionCloseMinutes = parseSessionClose(opts.kisSessionClose ?? KRX_SESSION_CLOSE_DEFAULT);
  } catch (err) {
    throw new ValidationError([`kisSessionClose ${(err as Error).message}`]);
  }
  const db = opts.db as CollectorDb | undefined;
  const log = opts.log.child({ component: 'collectors' });
  const common = {
    ...(opts.requestTimeoutMs !== undefined ? { timeoutMs: opts.requestTimeoutMs } : {}),
    ...(opts.retries !== undefined ? { retries: opts.retries } : {}),
    ...(opts.retryBaseDelayMs !== undefined ? { retryBaseDelayMs: opts.retryBaseDelayMs } : {}),
  };
  // Budgets: the caller's limiter, else one over the database (shared by every process on it), else this process's own.
  const ownLimiter = !opts.limiter && db ? createLimiter({ store: createPgBudgetStore(db), log }) : undefined;
  const limiter = opts.limiter ?? ownLimiter ?? defaultLimiter();
  const common2 = { ...common, limiter };
  const upbit: UpbitClient = createUpbitClient({ ...opts.upbit, ...common2, log: log.child({ exchange: 'upbit' }) });
  let kisClient: KisClient | undefined;
  const kis = (): KisClient => {
    if (!opts.kis) throw new PermanentError('kis_not_configured', 'KIS is not configured: set KIS_APP_KEY and KIS_APP_SECRET');
    kisClient ??= createKisClient({ ...opts.kis, ...common2, ...(db ? { db } : {}), log: log.child({ exchange: 'kis' }) });
    return kisClient;
  };
  const needDb = (what: string): CollectorDb => {
    if (!db) throw new PermanentError('no_database', `${what} needs a database (DATABASE_URL)`);
    return db;
  };

  async function listedSymbols(exchange: Exchange, signal?: AbortSignal): Promise<ListedSymbol[]> {
    if (exchange === 'upbit') {
      return (await upbit.markets(signal)).map((m) => ({ symbol: m.market, name: m.koreanName, englishName: m.englishName, market: m.market.split('-')[0]! }));
    }
    const urls = opts.kis?.masterUrls;
    if (!urls) throw new PermanentError('kis_master_not_configured', 'KIS symbol lists need KIS_MASTER_KOSPI_URL and KIS_MASTER_KOSDAQ_URL');
    const out: ListedSymbol[] = [];
    for (const market of KIS_MARKETS) {
      const source = market === 'KOSPI' ? urls.kospi : urls.kosdaq;
      const zip = await loadMasterZip(source, { timeoutMs: opts.requestTimeoutMs ?? 30_000, ...(signal ? { signal } : {}) });
      out.push(...parseMasterZip(zip, market as KisMarket).map(({ symbol, name, market: m }) => ({ symbol, name, market: m })));
    }
    return out;
  }

  async function lastStored(storage: Storage, key: { exchange: Exchange; symbol: string; timeframe: Timeframe }): Promise<Date | undefined> {
    if (storage === 'postgres') return lastStoredPg(needDb('postgres storage'), key);
    const fromFile = await lastStoredParquet(opts.dataRoot, key);
    if (storage === 'parquet') return fromFile;
    const fromDb = await lastStoredPg(needDb('postgres storage'), key);
    // Both stores: continue from the one that is behind, so neither keeps a hole.
    if (!fromFile || !fromDb) return undefined;
    return fromFile < fromDb ? fromFile : fromDb;
  }

  return {
    async collectSymbols({ exchanges, signal, onProgress }) {
      const list = exchanges ?? (opts.kis ? (['upbit', 'kis'] as Exchange[]) : (['upbit'] as Exchange[]));
      const store = needDb('collect-symbols');
      const results: SymbolsResult[] = [];
      for (const [i, exchange] of list.entries()) {
        onProgress?.(i / list.length, `fetching ${exchange} symbols`);
        const listed = await listedSymbols(exchange, signal);
        signal?.throwIfAborted();
        const r = await syncSymbols(store, exchange, listed, now());
        log.info({ exchange, ...r }, 'symbols updated');
        results.push({ exchange, ...r });
      }
      onProgress?.(1, 'symbols updated');
      return results;
    },

    async listSymbols(exchange, o = {}) {
      if (db) {
        const stored = await activeSymbols(db, exchange, o.market);
        if (stored.length > 0) return stored;
      }
      const listed = await listedSymbols(exchange, o.signal);
      return listed.filter((s) => !o.market || s.market === o.market).map((s) => s.symbol).sort();
    },

    async fetchCandles(input, { signal, onProgress, priority: callerPriority }) {
      const check = checkJobParams('fetch-candles', input);
      if (!check.ok) throw new ValidationError(check.problems);
      const params = check.value;
      const { exchange, symbol, timeframe: tf } = params;
      const storage = params.storage ?? opts.storage;
      const overwrite = params.overwrite ?? false;
      const key = { exchange, symbol, timeframe: tf };
      const at = now();
      let end = closedCutoffOf(exchange, tf, at, { kisSessionCloseMinutes });
      let from: Date;
      // A logical period (a backfilled occurrence) ends the range where the occurrence would have ended
      // it, at the period's end instead of now; days back count from there, else the period is the range.
      const period = params.period;
      const to = period?.to ?? params.to;
      const rangeEnd = period ? new Date(period.to) : at;
      if (to) end = new Date(Math.min(end.getTime(), floorToTimeframe(tf, new Date(to)).getTime()));
      if (params.from) from = new Date(params.from);
      else if (params.daysBack !== undefined) from = new Date(rangeEnd.getTime() - params.daysBack * DAY_MS);
      // The candle in progress when the period began closed within it: the occurrence collects it.
      else if (period) from = floorToTimeframe(tf, new Date(period.from));
      else {
        const last = await lastStored(storage, key);
        from = last ? addPeriods(tf, floorToTimeframe(tf, last), 1) : new Date(at.getTime() - DEFAULT_BACKFILL_DAYS * DAY_MS);
      }
      if (Number.isNaN(from.getTime()) || Number.isNaN(end.getTime())) throw new ValidationError(['params.from/to must be ISO 8601 instants']);
      // Candles are stored whole: start from the first period starting at or after `from`.
      const aligned = floorToTimeframe(tf, from);
      from = aligned < from ? addPeriods(tf, aligned, 1) : aligned;
      const span = Math.max(1, end.getTime() - from.getTime());
      const flog = log.child({ exchange, symbol, timeframe: tf });
      if (from >= end) {
        flog.debug('nothing new to collect');
        onProgress?.(1, 'up to date');
        return { exchange, symbol, timeframe: tf, fetched: 0, written: 0, requests: 0 };
      }
      flog.debug({ from: from.toISOString(), end: end.toISOString(), pagesAbout: Math.ceil(span / approxPeriodMs(tf) / 100) }, 'collecting candles');
      let fraction = 0;
      const onPage = (cursor: Date, fetched: number) => {
        fraction = 0.95 * Math.min(1, (end.getTime() - cursor.getTime()) / span);
        onProgress?.(fraction, `${fetched} candles`);
      };
      // A pause or ban of the shared budget shows in the run's progress message.
      const onWait = (message: string) => onProgress?.(fraction, message);
      // A few pages (the daily collection) go ahead of a large backfill in this process's queue.
      const pages = Math.ceil(span / approxPeriodMs(tf) / 100);
      const priority: Priority = callerPriority ?? (pages <= 3 ? 'high' : 'low');
      const pageOpts = { ...(signal ? { signal } : {}), onPage, onWait, priority };
      const got = exchange === 'upbit' ? await upbit.backfill(symbol, tf, from, end, pageOpts) : await kis().periodCandles(symbol, tf, from, end, pageOpts);
      // Everything is fetched before anything is written: an abort or a failure leaves the stores untouched.
      signal?.throwIfAborted();
      const candles = sortUnique(got.candles);
      let written = 0;
      if (storage === 'parquet' || storage === 'both') {
        // With a database, writers on every host take the file's PostgreSQL advisory lock.
        const lock = { ...(signal ? { signal } : {}), ...(db ? { db } : {}), ...(opts.sessionUrl ? { sessionUrl: opts.sessionUrl } : {}) };
        const r = await writeCandlesParquet(opts.dataRoot, key, candles, { overwrite, rangeFrom: from.getTime(), rangeTo: end.getTime(), lock });
        written = r.written;
      }
      if (storage === 'postgres' || storage === 'both') {
        const n = await upsertCandles(needDb('postgres storage'), key, candles, { overwrite, rangeFrom: from, rangeTo: end });
        written = Math.max(written, n);
      }
      onProgress?.(1, `${candles.length} candles, ${written} written`);
      const result: FetchResult = { exchange, symbol, timeframe: tf, fetched: candles.length, written, requests: got.requests };
      if (candles.length > 0) {
        result.first = candles[0]!.time.toISOString();
        result.last = candles.at(-1)!.time.toISOString();
      }
      flog.info({ fetched: result.fetched, written, requests: got.requests }, 'candles collected');
      return result;
    },

    async readCandles(q) {
      const key = { exchange: q.exchange, symbol: q.symbol, timeframe: q.timeframe };
      if (opts.storage === 'postgres') return readCandlesPg(needDb('postgres storage'), key, q.from, q.to);
      return readCandlesParquet(opts.dataRoot, key, q.from, q.to);
    },

    budgetsShared: limiter.store.kind === 'postgres',

    async close() {
      // Clients hold no sockets of their own (undici's global pool) and the db belongs to the caller.
      await ownLimiter?.stop();
    },
  };
}
