/**
 * Collects OHLCV candles by hand.
 *
 *   npx tsx packages/collectors/scripts/collect-price-data.ts --exchange all|upbit|kis \
 *     [--market KOSPI] [--symbols A,B] [--timeframes 1D,1H] [--days-back N] [--overwrite] [--storage parquet|postgres|both]
 *
 * Without --symbols it collects the active symbols of the symbols table (or the
 * exchange's list). Without --days-back it continues from the last stored candle.
 * A bar on a terminal, log lines otherwise; exit code 0 only if every series succeeded.
 */
import { parseArgs } from 'node:util';
import { checkJobParams, serializeError, STORAGES, TIMEFRAMES, type Exchange, type JobParams } from '@wombat/core';
import { openContext, progressReporter, usageError } from './script-support.ts';

const USAGE = `usage: collect-price-data --exchange all|upbit|kis [--market KOSPI|KOSDAQ|KRW] [--symbols A,B]
                          [--timeframes ${TIMEFRAMES.join(',')}] [--days-back N] [--overwrite] [--storage ${STORAGES.join('|')}]`;

let args;
try {
  args = parseArgs({
    options: {
      exchange: { type: 'string', default: 'all' },
      market: { type: 'string' },
      symbols: { type: 'string' },
      timeframes: { type: 'string', default: '1D' },
      'days-back': { type: 'string' },
      overwrite: { type: 'boolean', default: false },
      storage: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }).values;
} catch (err) {
  usageError((err as Error).message, USAGE);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const list = (v: string | undefined) => v?.split(',').map((s) => s.trim()).filter(Boolean);
if (!['all', 'upbit', 'kis'].includes(args.exchange)) usageError(`--exchange must be all, upbit or kis, not "${args.exchange}"`, USAGE);
let exchanges: Exchange[] = args.exchange === 'all' ? ['upbit', 'kis'] : [args.exchange as Exchange];
const timeframes = list(args.timeframes) ?? [];
const badTf = timeframes.filter((tf) => !(TIMEFRAMES as readonly string[]).includes(tf));
if (badTf.length > 0 || timeframes.length === 0) usageError(`--timeframes: ${badTf.join(', ') || '(none)'} not known; use ${TIMEFRAMES.join(', ')}`, USAGE);
if (args['days-back'] !== undefined && !/^\d+$/.test(args['days-back'])) usageError(`--days-back must be a whole number of days, not "${args['days-back']}"`, USAGE);
if (args.storage !== undefined && !(STORAGES as readonly string[]).includes(args.storage)) usageError(`--storage must be one of ${STORAGES.join(', ')}`, USAGE);
const symbolsArg = list(args.symbols);

const ctx = await openContext('collect-price-data', {
  // With DATABASE_URL the script shares the exchanges' request budgets with the workers.
  needDb: (config) => Boolean(config.databaseUrl) || (args.storage ?? config.storage) !== 'parquet' || (exchanges.includes('kis') && Boolean(config.kisAppKey)),
});
if (!ctx.config.kisAppKey && exchanges.includes('kis')) {
  if (args.exchange === 'kis') usageError('--exchange kis needs KIS_APP_KEY and KIS_APP_SECRET', USAGE);
  ctx.log.warn('KIS is not configured (KIS_APP_KEY): collecting Upbit only');
  exchanges = exchanges.filter((e) => e !== 'kis');
}
let failed = 0;
let code = 0;
try {
  const tasks: JobParams<'fetch-candles'>[] = [];
  const problems: string[] = [];
  for (const exchange of exchanges) {
    const symbols = symbolsArg ?? (await ctx.collectors.listSymbols(exchange, { ...(args.market ? { market: args.market } : {}), signal: ctx.signal }));
    for (const symbol of symbols) {
      for (const timeframe of timeframes) {
        const params = {
          exchange,
          symbol,
          timeframe,
          ...(args['days-back'] !== undefined ? { daysBack: Number(args['days-back']) } : {}),
          ...(args.overwrite ? { overwrite: true } : {}),
          ...(args.storage ? { storage: args.storage } : {}),
        };
        const check = checkJobParams('fetch-candles', params);
        if (check.ok) tasks.push(check.value);
        else problems.push(...check.problems.map((p) => `${exchange} ${symbol} ${timeframe}: ${p}`));
      }
    }
  }
  if (problems.length > 0) usageError(problems.join('\n'), USAGE);
  const progress = progressReporter(tasks.length, ctx.log);
  let fetched = 0;
  let written = 0;
  for (const task of tasks) {
    const label = `${task.exchange} ${task.symbol} ${task.timeframe}`;
    try {
      const r = await ctx.collectors.fetchCandles(task, { signal: ctx.signal, onProgress: progress.step(label) });
      fetched += r.fetched;
      written += r.written;
      progress.done(label, true);
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      failed++;
      progress.done(label, false);
      ctx.log.error({ task: label, err: serializeError(err) }, 'collection failed');
    }
  }
  progress.stop();
  process.stdout.write(`collected ${fetched} candles (${written} written) for ${tasks.length - failed} of ${tasks.length} series${failed ? `, ${failed} failed` : ''}\n`);
  if (failed > 0) code = 1;
} catch (err) {
  ctx.log.error({ err: serializeError(err) }, 'collection stopped');
  process.stderr.write(`collect-price-data failed: ${(err as Error).message}\n`);
  code = ctx.signal.aborted ? 130 : 1;
} finally {
  await ctx.close();
}
process.exit(code);
