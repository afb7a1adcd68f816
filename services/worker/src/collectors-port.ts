import type { Candle } from '@wombat/collectors';
import type { Exchange, JobParams, Timeframe } from '@wombat/core/jobs';

export type { Candle };

export type OnProgress = (fraction: number, message?: string) => void;

/**
 * What the worker needs from @wombat/collectors. The worker depends on this shape, not on the
 * package's internals, so tests can hand it an in-memory candle source for backtests.
 */
export interface CollectorsPort {
  collectSymbols(o: { exchanges?: Exchange[]; signal?: AbortSignal; onProgress?: OnProgress }): Promise<unknown>;
  listSymbols(exchange: Exchange, o?: { market?: string; signal?: AbortSignal }): Promise<string[]>;
  fetchCandles(params: JobParams<'fetch-candles'>, o: { signal?: AbortSignal; onProgress?: OnProgress }): Promise<unknown>;
  readCandles(q: { exchange: Exchange; symbol: string; timeframe: Timeframe; from: Date; to: Date }): Promise<Candle[]>;
}

/** What the handler reads of a crawl's result; the rest goes to the run's result as it is. */
export interface CrawlOutcome {
  ok: boolean;
  summary: string;
  /** A failure a job retry might get past; absent or false: fail without retrying. */
  retryable?: boolean;
}

/**
 * What the worker needs from the crawls in @wombat/collectors. A crawl reports failed sources in
 * its result and never throws for them: the handler decides what the run's outcome is.
 */
export interface CrawlsPort {
  crawlPrices(o: { runId?: string; sources?: string[]; signal?: AbortSignal; onProgress?: OnProgress }): Promise<CrawlOutcome>;
  collectPosts(o: {
    subreddits?: string[];
    horizonHours?: number;
    maxPages?: number;
    signal?: AbortSignal;
    onProgress?: OnProgress;
  }): Promise<CrawlOutcome>;
}
