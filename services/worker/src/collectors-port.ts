import type { Candle } from '@wombat/collectors';
import type { Exchange, JobParams, Timeframe } from '@wombat/core';

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
