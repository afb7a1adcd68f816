import { AppError, PermanentError } from '@wombat/core/platform';
import type { JobParams } from '@wombat/core/jobs';
import type { CrawlsPort } from '../collectors-port.ts';
import type { HandlerDeps, JobContext } from './types.ts';

function needCrawls(deps: HandlerDeps): CrawlsPort {
  if (!deps.crawls) throw new PermanentError('crawls_unavailable', 'this worker runs without the crawls; start it with the crawl configuration');
  return deps.crawls;
}

/**
 * Every source is crawled and its observations stored before the outcome is decided; a source
 * that failed then fails the run (no job retry: the next run is the retry), its counts in the log.
 */
export async function crawlPrices(ctx: JobContext<'crawl-prices'>, deps: HandlerDeps): Promise<unknown> {
  const p: JobParams<'crawl-prices'> = ctx.params;
  const result = await needCrawls(deps).crawlPrices({ runId: ctx.runId, ...(p.sources ? { sources: p.sources } : {}), signal: ctx.signal, onProgress: ctx.progress });
  if (!result.ok) {
    ctx.log.error({ result }, 'price crawl: some sources failed');
    throw new PermanentError('crawl_sources_failed', result.summary);
  }
  ctx.log.info({ result }, 'price crawl done');
  return result;
}

export async function collectPosts(ctx: JobContext<'collect-posts'>, deps: HandlerDeps): Promise<unknown> {
  const p = ctx.params;
  const result = await needCrawls(deps).collectPosts({
    ...(p.subreddits ? { subreddits: p.subreddits } : {}),
    ...(p.horizonHours !== undefined ? { horizonHours: p.horizonHours } : {}),
    ...(p.maxPages !== undefined ? { maxPages: p.maxPages } : {}),
    signal: ctx.signal,
    onProgress: ctx.progress,
  });
  if (!result.ok) {
    ctx.log.error({ result }, 'post collection: some subreddits failed');
    // The posts already stored stay, so a retry pages only what is missing; it is pointless
    // when every failure is permanent (a private or unknown subreddit, refused credentials).
    if (result.retryable) throw new AppError('collect_posts_failed', result.summary);
    throw new PermanentError('collect_posts_failed', result.summary);
  }
  ctx.log.info({ result }, 'post collection done');
  return result;
}
