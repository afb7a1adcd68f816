import { setTimeout as sleep } from 'node:timers/promises';
import { AppError, PermanentError } from '@wombat/core';
import { runBacktest } from '../backtest/run.ts';
import { collectPrices, collectSymbols, fetchCandles, needCollectors } from './collect.ts';
import type { JobHandlers } from './types.ts';

export const defaultHandlers: JobHandlers = {
  // The runner completes a canary without params itself (no signal, no timers); a steered one comes here.
  canary: async (ctx) => {
    const { sleep_ms: sleepMs = 0, fail } = ctx.params;
    if (sleepMs > 0) await sleep(sleepMs, undefined, { signal: ctx.signal });
    if (fail === 'permanent') throw new PermanentError('canary_failed', 'canary asked to fail for good (fail: "permanent")');
    if (fail === true) throw new AppError('canary_failed', 'canary asked to fail (fail: true)');
    return { slept_ms: sleepMs };
  },
  'collect-symbols': collectSymbols,
  'collect-prices': collectPrices,
  'fetch-candles': fetchCandles,
  backtest: (ctx, deps) => runBacktest(ctx.params, needCollectors(deps), { signal: ctx.signal, onProgress: ctx.progress }),
};
