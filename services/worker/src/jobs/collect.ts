import { AppError, insertRunsAndSend, type Exchange, type JobParams, type Timeframe } from '@wombat/core';
import { sql } from 'kysely';
import type { CollectorsPort } from '../collectors-port.ts';
import type { HandlerDeps, JobContext } from './types.ts';

export function needCollectors(deps: HandlerDeps): CollectorsPort {
  if (!deps.collectors) throw new AppError('collectors_unavailable', 'this worker runs without collectors; start it with the collector configuration');
  return deps.collectors;
}

export async function collectSymbols(ctx: JobContext<'collect-symbols'>, deps: HandlerDeps): Promise<unknown> {
  const result = await needCollectors(deps).collectSymbols({ exchanges: ctx.params.exchanges, signal: ctx.signal, onProgress: ctx.progress });
  return Array.isArray(result) ? { exchanges: result } : (result ?? {});
}

export async function fetchCandles(ctx: JobContext<'fetch-candles'>, deps: HandlerDeps): Promise<unknown> {
  return needCollectors(deps).fetchCandles(ctx.params, { signal: ctx.signal, onProgress: ctx.progress });
}

export const DEFAULT_FANOUT_TIMEFRAMES: readonly Timeframe[] = ['1D'];

/**
 * Fan-out: one fetch-candles run and job per exchange x symbol x timeframe, each with its own
 * retries, created with their runs in one transaction. The parent row is locked first and a retry
 * of a parent that already created its children creates none, so nothing is duplicated.
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
        });
      }
    }
  }
  ctx.signal.throwIfAborted();
  const created = await deps.db.transaction().execute(async (trx) => {
    const parent = await trx.selectFrom('wombat.runs').select(['id', 'schedule_id']).where('id', '=', ctx.runId).forUpdate().executeTakeFirst();
    const existing = await trx
      .selectFrom('wombat.runs')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('parent_id', '=', ctx.runId)
      .executeTakeFirstOrThrow();
    if (existing.n > 0) return { children: existing.n, reused: true };
    if (combos.length === 0) return { children: 0, reused: false };
    await insertRunsAndSend(
      trx,
      deps.boss,
      // Children carry the parent's schedule, so its overlap policy and history cover them.
      combos.map((params) => ({ job: 'fetch-candles' as const, params, trigger: 'fanout' as const, parentId: ctx.runId, scheduleId: parent?.schedule_id ?? null })),
    );
    return { children: combos.length, reused: false };
  });
  ctx.log.info(created, 'fan-out done');
  return { children: created.children, exchanges, timeframes, ...(created.reused ? { alreadyCreated: true } : {}) };
}
