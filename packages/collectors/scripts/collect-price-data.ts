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
import { collectPriceSeries, planPriceSeries } from '@wombat/collectors';
import { STORAGES, TIMEFRAMES, type Exchange, type Storage, type Timeframe } from '@wombat/core/jobs';
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
let code = 0;
try {
  const { tasks, problems } = await planPriceSeries(
    ctx.collectors,
    {
      exchanges,
      market: args.market,
      symbols: symbolsArg,
      timeframes: timeframes as Timeframe[],
      daysBack: args['days-back'] === undefined ? undefined : Number(args['days-back']),
      overwrite: args.overwrite,
      storage: args.storage as Storage | undefined,
    },
    ctx.signal,
  );
  if (problems.length > 0) usageError(problems.join('\n'), USAGE);
  const progress = progressReporter(tasks.length, ctx.log);
  const report = await collectPriceSeries(ctx.collectors, tasks, {
    signal: ctx.signal,
    onProgress: (label, fraction, message) => progress.step(label)(fraction, message),
    onDone: (label, ok, _i, err) => {
      progress.done(label, ok);
      if (!ok) ctx.log.error({ task: label, err }, 'collection failed');
    },
  });
  progress.stop();
  const { failed } = report;
  process.stdout.write(`collected ${report.fetched} candles (${report.written} written) for ${tasks.length - failed} of ${tasks.length} series${failed ? `, ${failed} failed` : ''}\n`);
  if (failed > 0) code = 1;
} catch (err) {
  ctx.log.error({ err }, 'collection stopped');
  process.stderr.write(`collect-price-data failed: ${(err as Error).message}\n`);
  code = ctx.signal.aborted ? 130 : 1;
} finally {
  await ctx.close();
}
process.exit(code);
