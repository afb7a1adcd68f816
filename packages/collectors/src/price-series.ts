import { serializeError } from '@wombat/core/platform';
import { checkJobParams, type Exchange, type JobParams, type Storage, type Timeframe } from '@wombat/core/jobs';
import type { Collectors } from './collectors.ts';

/**
 * Collecting many price series in this process, one after the other: what the
 * manual collect-price-data script and `wombat run collect-prices` both do (the
 * worker's collect-prices job fans the same series out to the queue instead).
 */
export interface PriceSeriesPlan {
  exchanges: Exchange[];
  /** KIS market (KOSPI, KOSDAQ) or Upbit quote market, when symbols are not given. */
  market?: string | undefined;
  /** Default: the exchange's active symbols (the symbols table, else the exchange's list). */
  symbols?: string[] | undefined;
  timeframes: Timeframe[];
  daysBack?: number | undefined;
  overwrite?: boolean | undefined;
  storage?: Storage | undefined;
}

/** One fetch-candles parameter set per exchange x symbol x timeframe; problems name the series they belong to. */
export async function planPriceSeries(
  collectors: Pick<Collectors, 'listSymbols'>,
  plan: PriceSeriesPlan,
  signal?: AbortSignal,
): Promise<{ tasks: JobParams<'fetch-candles'>[]; problems: string[] }> {
  const tasks: JobParams<'fetch-candles'>[] = [];
  const problems: string[] = [];
  for (const exchange of plan.exchanges) {
    const symbols = plan.symbols ?? (await collectors.listSymbols(exchange, { ...(plan.market ? { market: plan.market } : {}), ...(signal ? { signal } : {}) }));
    for (const symbol of symbols) {
      for (const timeframe of plan.timeframes) {
        const params = {
          exchange,
          symbol,
          timeframe,
          ...(plan.daysBack !== undefined ? { daysBack: plan.daysBack } : {}),
          ...(plan.overwrite ? { overwrite: true } : {}),
          ...(plan.storage ? { storage: plan.storage } : {}),
        };
        const check = checkJobParams('fetch-candles', params);
        if (check.ok) tasks.push(check.value);
        else problems.push(...check.problems.map((p) => `${exchange} ${symbol} ${timeframe}: ${p}`));
      }
    }
  }
  return { tasks, problems };
}

export interface SeriesReport {
  series: number;
  failed: number;
  fetched: number;
  written: number;
  failures: { series: string; error: ReturnType<typeof serializeError> }[];
}

export interface SeriesHooks {
  /** Progress within one series (fraction 0..1 of it). */
  onProgress?(label: string, fraction: number, message?: string): void;
  onDone?(label: string, ok: boolean, index: number, err?: unknown): void;
}

export const seriesLabel = (t: Pick<JobParams<'fetch-candles'>, 'exchange' | 'symbol' | 'timeframe'>) => `${t.exchange} ${t.symbol} ${t.timeframe}`;

/**
 * Collects each series in turn. A failed series is reported and the next one
 * goes on; an abort (Ctrl-C, a cancelled run) stops at once and rejects.
 */
export async function collectPriceSeries(
  collectors: Pick<Collectors, 'fetchCandles'>,
  tasks: JobParams<'fetch-candles'>[],
  opts: { signal?: AbortSignal } & SeriesHooks = {},
): Promise<SeriesReport> {
  const report: SeriesReport = { series: tasks.length, failed: 0, fetched: 0, written: 0, failures: [] };
  for (const [i, task] of tasks.entries()) {
    const label = seriesLabel(task);
    try {
      const r = await collectors.fetchCandles(task, {
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.onProgress ? { onProgress: (fraction: number, message?: string) => opts.onProgress!(label, fraction, message) } : {}),
      });
      report.fetched += r.fetched;
      report.written += r.written;
      opts.onDone?.(label, true, i);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      report.failed++;
      report.failures.push({ series: label, error: serializeError(err) });
      opts.onDone?.(label, false, i, err);
    }
  }
  return report;
}
