/**
 * Collects new posts of REDDIT_SUBREDDITS (or the ones given) by hand, as the
 * daily collect-posts job does.
 *
 *   npx tsx packages/collectors/scripts/collect-posts.ts [--subreddits a,b] [--horizon-hours N] [--max-pages N]
 *
 * Needs Postgres (DATABASE_URL, or the embedded one). A bar on a terminal, log
 * lines otherwise; exit code 0 only if every subreddit succeeded.
 */
import { parseArgs } from 'node:util';
import { serializeError } from '@wombat/core/platform';
import { checkJobParams } from '@wombat/core/jobs';
import { createCrawls } from '@wombat/collectors';
import { loadCrawlConfig, openContext, progressReporter, usageError } from './script-support.ts';

const USAGE = 'usage: collect-posts [--subreddits a,b] [--horizon-hours N] [--max-pages N]';
let args;
try {
  args = parseArgs({
    options: { subreddits: { type: 'string' }, 'horizon-hours': { type: 'string' }, 'max-pages': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  }).values;
} catch (err) {
  usageError((err as Error).message, USAGE);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const whole = (flag: string, v: string | undefined) => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) usageError(`--${flag} must be a whole number, not "${v}"`, USAGE);
  return Number(v);
};
const params = {
  ...(args.subreddits !== undefined ? { subreddits: args.subreddits.split(',').map((s) => s.trim().replace(/^\/?r\//i, '')).filter(Boolean) } : {}),
  ...(args['horizon-hours'] !== undefined ? { horizonHours: whole('horizon-hours', args['horizon-hours']) } : {}),
  ...(args['max-pages'] !== undefined ? { maxPages: whole('max-pages', args['max-pages']) } : {}),
};
// The same checks as the job's params: a bad name is caught before anything starts.
const check = checkJobParams('collect-posts', params);
if (!check.ok) usageError(check.problems.join('\n').replaceAll('params.', '--'), USAGE);
const crawlConfig = loadCrawlConfig();
if (!check.value.subreddits && !crawlConfig.redditSubreddits) usageError('no subreddits: set REDDIT_SUBREDDITS or pass --subreddits', USAGE);

const ctx = await openContext('collect-posts', { needDb: () => true });
const crawls = createCrawls(crawlConfig, { log: ctx.log, db: ctx.db!.db });
let code = 0;
const progress = progressReporter(1, ctx.log);
try {
  const r = await crawls.collectPosts({ ...check.value, signal: ctx.signal, onProgress: progress.step('posts') });
  progress.done('posts', r.ok);
  progress.stop();
  for (const s of r.subreddits) {
    process.stdout.write(`r/${s.subreddit}: ${s.status}, ${s.pages} page(s), ${s.seen} seen, ${s.inserted} new, ${s.updated} refreshed${s.error ? `: ${s.error}` : ''}\n`);
  }
  process.stdout.write(`${r.summary} (${r.mode})\n`);
  if (!r.ok) code = 1;
} catch (err) {
  progress.stop();
  ctx.log.error({ err: serializeError(err) }, 'post collection failed');
  process.stderr.write(`collect-posts failed: ${(err as Error).message}\n`);
  code = ctx.signal.aborted ? 130 : 1;
} finally {
  await ctx.close();
}
process.exit(code);
