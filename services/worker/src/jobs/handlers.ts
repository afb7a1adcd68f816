import { runBacktest } from '../backtest/run.ts';
import { databaseBackup } from './backup.ts';
import { canary } from './canary.ts';
import { dataSnapshot } from './snapshot.ts';
import { collectionReport } from './report.ts';
import { collectPosts, crawlPrices } from './crawl.ts';
import { collectPrices, collectSymbols, fetchCandles, needCollectors } from './collect.ts';
import type { JobHandlers } from './types.ts';

export const defaultHandlers: JobHandlers = {
  // The runner completes a canary without params itself, without a signal or timers.
  canary,
  'collect-symbols': collectSymbols,
  'collect-prices': collectPrices,
  'fetch-candles': fetchCandles,
  'crawl-prices': crawlPrices,
  'collect-posts': collectPosts,
  'data-snapshot': dataSnapshot,
  'collection-report': collectionReport,
  'database-backup': databaseBackup,
  backtest: (ctx, deps) => runBacktest(ctx.params, needCollectors(deps), { signal: ctx.signal, onProgress: ctx.progress }),
};
