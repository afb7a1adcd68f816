import { AppError } from '@wombat/core/platform';
import type { Exchange, JobParams, Timeframe } from '@wombat/core/jobs';
import { recordChildRuns } from '@wombat/core/runs';
import type { CollectorsPort } from '../collectors-port.ts';
import type { HandlerDeps, JobContext } from './types.ts';

export function needCollectors(deps: HandlerDeps): CollectorsPort {
  if (!deps.collectors) throw new AppError('collectors_unavailable', 'this worker runs without collectors; start it with the collector configuration');
  return deps.collectors;
}

export async function collectSymbols(ctx: JobContext<'collect-symbols'>, deps: HandlerDeps): Promise<unknown> {
  const result = await needCollectors(deps).collectSymbols({ exchanges: ctx.params.exchanges, signal: ctx.signal, onProgress: ctx.progress });
  const out = Array.isArray(result) ? { exchanges: result } : ((result ?? {}) as object);
  // The exchanges publish no past listings: a run for a past period records it and says the lists are today's.
  const period = ctx.params.period;
  return period ? { ...out, period, listedAsOf: new Date().toISOString(), note: 'symbol lists are as of the run, not of the period: the exchanges publish no past listings' } : out;
}

export async function fetchCandles(ctx: JobContext<'fetch-candles'>, deps: HandlerDeps): Promise<unknown> {
  return needCollectors(deps).fetchCandles(ctx.params, { signal: ctx.signal, onProgress: ctx.progress });
}

export const DEFAULT_FANOUT_TIMEFRAMES: readonly Timeframe[] = ['1D'];

/**
 * Fan-out: one fetch-candles run and job per exchange x symbol x timeframe, each with its own
 * retries, recorded once by the run lifecycle (a retry of the parent creates none).
 */
export async function collectPrices(ctx: JobContext<'collect-prices'>, deps: HandlerDeps): Promise<unknown> {
  const p = ctx.params;
  const exchanges: Exchange[] = p.exchanges ?? deps.defaultExchanges;
  const timeframes: Timeframe[] = p.timeframes ?? [...DEFAULT_FANOUT_TIMEFRAMES];
  const combos: JobParams<'fetch-candles'>[] = [];
  for (const [i, exchange] of exchanges.entries()) {
    const symbols = p.symbols ?? (await needCollectors(deps).listSymbols(exchange, { ...(p.market ? { market: p.market } : {}), signal: ctx.signal }));
    ctx.progress((i + 1) / (exchanges.length + 1), `listed ${exchange}`);
    for (const symbol of symbols) {
      for (const timeframe of timeframes) {
        combos.push({
          exchange,
          symbol,
          timeframe,
          ...(p.daysBack !== undefined ? { daysBack: p.daysBack } : {}),
          ...(p.overwrite !== undefined ? { overwrite: p.overwrite } : {}),
          ...(p.period ? { period: p.period } : {}),
        });
      }
    }
  }
  ctx.signal.throwIfAborted();
  const created = await recordChildRuns(deps.db, deps.boss, ctx.runId, combos.map((params) => ({ job: 'fetch-candles' as const, params })));
  ctx.log.info(created, 'fan-out done');
  return { children: created.children, exchanges, timeframes, ...(p.period ? { period: p.period } : {}), ...(created.reused ? { alreadyCreated: true } : {}) };
}
