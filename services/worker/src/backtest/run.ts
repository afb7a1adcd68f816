import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { PermanentError } from '@wombat/core/platform';
import type { JobParams, Timeframe } from '@wombat/core/jobs';
import type { CollectorsPort } from '../collectors-port.ts';
import { Account, summarise, type Summary, type Trade } from './portfolio.ts';
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
 * Runs a strategy over candles already collected, symbol by symbol, reading in time chunks. Each
 * symbol trades its equal share of initialCash; the overall summary adds up the accounts (its
 * drawdown is the worst of the symbols', its sharpe their mean).
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
  const chunksPerSymbol = Math.max(1, Math.ceil((to.getTime() - from.getTime()) / chunkMs));
  const totalChunks = chunksPerSymbol * params.symbols.length;
  const symbols: Record<string, Summary> = {};
  const trades: Trade[] = [];
  let done = 0;
  let finalEquity = 0;
  let worstDrawdown = 0;
  let candles = 0;
  const sharpes: number[] = [];

  for (const symbol of params.symbols) {
    const strategy = createStrategy(params.strategy, params.options);
    const account = new Account(symbol, initialCash / params.symbols.length, feeRate);
    for (let start = from.getTime(); start < to.getTime(); start += chunkMs) {
      o.signal.throwIfAborted();
      const end = Math.min(start + chunkMs, to.getTime());
      const chunk = await source.readCandles({ exchange: params.exchange, symbol, timeframe, from: new Date(start), to: new Date(end) });
      // Chunk bounds are [start, end): filtered here too, whatever the source does at the edges.
      for (const candle of chunk) {
        const t = candle.time.getTime();
        if (t >= start && t < end) account.apply(candle, strategy.next(candle));
      }
      done++;
      o.onProgress(done / totalChunks, `${symbol}: ${account.candles} candles`);
      // A long CPU-bound run must still hear a cancel NOTIFY and its timers.
      await yieldToEventLoop();
    }
    const summary = account.finish();
    symbols[symbol] = summary;
    trades.push(...account.trades);
    finalEquity += summary.finalEquity;
    worstDrawdown = Math.max(worstDrawdown, summary.maxDrawdownPct / 100);
    candles += summary.candles;
    if (summary.sharpe !== null) sharpes.push(summary.sharpe);
  }
  o.signal.throwIfAborted();
  if (candles === 0) {
    throw new PermanentError(
      'no_candles',
      `no ${timeframe} candles are stored for ${params.exchange} ${params.symbols.join(', ')} between ${params.from} and ${params.to}: collect them first (a fetch-candles task, or the collect-price-data script)`,
    );
  }
  const empty = Object.entries(symbols).filter(([, summary]) => summary.candles === 0).map(([symbol]) => symbol);
  const sharpe = sharpes.length > 0 ? sharpes.reduce((a, b) => a + b, 0) / sharpes.length : null;
  trades.sort((a, b) => a.exitTime.localeCompare(b.exitTime));
  return {
    strategy: params.strategy,
    timeframe,
    summary: summarise(initialCash, finalEquity, trades, worstDrawdown, sharpe, candles),
    symbols,
    trades,
    ...(empty.length > 0 ? { warnings: [`no candles stored for ${empty.join(', ')}: their share of the cash stayed idle`] } : {}),
  };
}
