import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { PermanentError } from '@wombat/core/platform';
import type { JobParams, Timeframe } from '@wombat/core/jobs';
import type { CollectorsPort } from '../collectors-port.ts';
import { Account, Portfolio, type EquityMark, type Summary, type Trade } from './portfolio.ts';
import { createStrategy } from './strategies.ts';

export interface BacktestResult {
  strategy: string;
  timeframe: Timeframe;
  summary: Summary;
  symbols: Record<string, Summary>;
  trades: Trade[];
  /** Present when some symbols had no stored candles in the range. */
  warnings?: string[];
}

const MINUTE = 60_000;
const timeframeMs: Record<Timeframe, number> = {
  '1m': MINUTE,
  '3m': 3 * MINUTE,
  '5m': 5 * MINUTE,
  '10m': 10 * MINUTE,
  '15m': 15 * MINUTE,
  '30m': 30 * MINUTE,
  '1H': 60 * MINUTE,
  '4H': 240 * MINUTE,
  '1D': 1440 * MINUTE,
  '1W': 7 * 1440 * MINUTE,
  '1M': 31 * 1440 * MINUTE,
};

/** Candles read per chunk: between chunks the run reports progress and checks for cancellation. */
export const CANDLES_PER_CHUNK = 5000;

/**
 * Runs a strategy over candles already collected. Each symbol trades its equal share of
 * initialCash in an account of its own; the symbols are read side by side, one time chunk after
 * another, so the overall summary is that of the portfolio of all the accounts (its equity the sum
 * of theirs at every candle time), with each symbol's own summary beside it.
 */
export async function runBacktest(
  params: JobParams<'backtest'>,
  source: Pick<CollectorsPort, 'readCandles'>,
  o: { signal: AbortSignal; onProgress: (fraction: number, message?: string) => void; candlesPerChunk?: number },
): Promise<BacktestResult> {
  const timeframe = params.timeframe ?? '1D';
  const from = new Date(params.from);
  const to = new Date(params.to);
  const initialCash = params.initialCash ?? 1_000_000;
  const feeRate = params.feeRate ?? 0.0005;
  // Validated before any reading, so bad options fail at once.
  createStrategy(params.strategy, params.options);
  const chunkMs = (o.candlesPerChunk ?? CANDLES_PER_CHUNK) * timeframeMs[timeframe];
  const chunks = Math.max(1, Math.ceil((to.getTime() - from.getTime()) / chunkMs));
  const totalReads = chunks * params.symbols.length;
  const share = initialCash / params.symbols.length;
  const books = params.symbols.map((symbol) => ({ symbol, strategy: createStrategy(params.strategy, params.options), account: new Account(symbol, share, feeRate) }));
  const portfolio = new Portfolio(initialCash, books.map(() => share));
  let reads = 0;

  for (let start = from.getTime(); start < to.getTime(); start += chunkMs) {
    const end = Math.min(start + chunkMs, to.getTime());
    const marks: EquityMark[] = [];
    for (const [i, { symbol, strategy, account }] of books.entries()) {
      o.signal.throwIfAborted();
      const chunk = await source.readCandles({ exchange: params.exchange, symbol, timeframe, from: new Date(start), to: new Date(end) });
      // Chunk bounds are [start, end): filtered here too, whatever the source does at the edges.
      for (const candle of chunk) {
        const t = candle.time.getTime();
        if (t < start || t >= end) continue;
        account.apply(candle, strategy.next(candle));
        marks.push({ time: t, account: i, equity: account.equity });
      }
      reads++;
      o.onProgress(reads / totalReads, `${symbol}: ${account.candles} candles`);
      // A long CPU-bound run must still hear a cancel NOTIFY and its timers.
      await yieldToEventLoop();
    }
    portfolio.markAll(marks);
  }
  o.signal.throwIfAborted();

  const symbols: Record<string, Summary> = {};
  const trades: Trade[] = [];
  let finalEquity = 0;
  let candles = 0;
  for (const { symbol, account } of books) {
    symbols[symbol] = account.finish();
    trades.push(...account.trades);
    finalEquity += account.cash;
    candles += account.candles;
  }
  if (candles === 0) {
    throw new PermanentError(
      'no_candles',
      `no ${timeframe} candles are stored for ${params.exchange} ${params.symbols.join(', ')} between ${params.from} and ${params.to}: collect them first (a fetch-candles task, or the collect-price-data script)`,
    );
  }
  const empty = Object.entries(symbols).filter(([, summary]) => summary.candles === 0).map(([symbol]) => symbol);
  trades.sort((a, b) => a.exitTime.localeCompare(b.exitTime));
  return {
    strategy: params.strategy,
    timeframe,
    summary: portfolio.finish(finalEquity, trades, candles),
    symbols,
    trades,
    ...(empty.length > 0 ? { warnings: [`no candles stored for ${empty.join(', ')}: their share of the cash stayed idle`] } : {}),
  };
}
