import { AppError, PermanentError, type JobParams } from '@wombat/core';
import type { OnProgress } from '../collectors-port.ts';
import type { HandlerDeps, JobContext } from './types.ts';

/** What the handler reads of a crawl's result; the rest goes to the run's result as it is. */
export interface CrawlOutcome {
  ok: boolean;
  summary: string;
  /** A failure a job retry might get past; absent or false: fail without retrying. */
  retryable?: boolean;
}

/**
 * What the worker needs from the crawls in @wombat/collectors. A crawl reports failed sources in
 * its result and never throws for them: the handler decides what the run's outcome is.
 */
export interface CrawlsPort {
  crawlPrices(o: { runId?: string; sources?: string[]; signal?: AbortSignal; onProgress?: OnProgress }): Promise<CrawlOutcome>;
  collectPosts(o: {
    subreddits?: string[];
    horizonHours?: number;
    maxPages?: number;
    signal?: AbortSignal;
    onProgress?: OnProgress;
  }): Promise<CrawlOutcome>;
}

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
