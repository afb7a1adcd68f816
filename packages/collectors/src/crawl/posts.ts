import { PermanentError, serializeError, type Logger } from '@wombat/core/platform';
import { createRedditClient, type RedditClient, type RedditClientOptions } from './reddit.ts';
import { storedPostIds, upsertPosts, type CrawlDb, type PostRow } from './store.ts';

export interface PostCollectionOptions extends Omit<RedditClientOptions, 'db'> {
  db: CrawlDb;
  subreddits: string[];
  /** Paging stops at posts older than this (first run, or a long pause). */
  horizonHours: number;
  /** Stored posts younger than this get their score and comment count refreshed. */
  refreshHours: number;
  maxPages: number;
  now?: () => Date;
  log: Logger;
}

export interface SubredditResult {
  subreddit: string;
  status: 'ok' | 'failed';
  pages: number;
  seen: number;
  inserted: number;
  updated: number;
  /** Seen again but older than the refresh age: left as stored. */
  unchanged: number;
  error?: string;
  /** False when retrying cannot help (private, banned or unknown subreddit, refused credentials). */
  retryable?: boolean;
}

export interface PostCollectionResult {
  ok: boolean;
  /** Some failure might pass on a retry (network, 5xx, rate limit); false when all are permanent. */
  retryable: boolean;
  summary: string;
  mode: 'oauth' | 'public';
  subreddits: SubredditResult[];
  requests: number;
}

/**
 * Collects new posts: each subreddit's `/new` listing, newest first, page after
 * page until a page reaches posts already stored (and older than the refresh
 * age), the horizon, the end of the listing or `maxPages`. Upserts make a re-run
 * harmless. A subreddit that fails (private, banned, down) does not stop the others.
 */
export async function collectPosts(
  o: PostCollectionOptions,
  run: { subreddits?: string[]; horizonHours?: number; maxPages?: number; signal?: AbortSignal; onProgress?: (fraction: number, message?: string) => void } = {},
  client: RedditClient = createRedditClient({ ...o, db: o.db }),
): Promise<PostCollectionResult> {
  const now = o.now ?? (() => new Date());
  const subs = run.subreddits ?? o.subreddits;
  const horizonHours = run.horizonHours ?? o.horizonHours;
  const maxPages = run.maxPages ?? o.maxPages;
  const log = o.log.child({ component: 'collect-posts', mode: client.mode });
  const results: SubredditResult[] = [];
  for (const [i, sub] of subs.entries()) {
    run.onProgress?.(i / subs.length, `r/${sub}`);
    const r: SubredditResult = { subreddit: sub, status: 'ok', pages: 0, seen: 0, inserted: 0, updated: 0, unchanged: 0 };
    try {
      await collectOne(sub, r);
      log.info({ ...r }, 'subreddit collected');
    } catch (err) {
      if (run.signal?.aborted) throw err;
      r.status = 'failed';
      r.error = (err as Error).message;
      r.retryable = !(err instanceof PermanentError);
      log.error({ subreddit: sub, err: serializeError(err) }, 'subreddit FAILED');
    }
    results.push(r);
  }
  const failed = results.filter((r) => r.status === 'failed');
  const total = (k: 'seen' | 'inserted' | 'updated') => results.reduce((n, r) => n + r[k], 0);
  const summary =
    `${results.length} subreddit(s): ${results.length - failed.length} ok, ${failed.length} failed; ${total('seen')} posts seen, ${total('inserted')} new, ${total('updated')} refreshed` +
    (failed.length > 0 ? ` (${failed.map((f) => `r/${f.subreddit}: ${f.error}`).join('; ')})` : '');
  run.onProgress?.(1, summary);
  return { ok: failed.length === 0, retryable: failed.some((f) => f.retryable), summary, mode: client.mode, subreddits: results, requests: client.requests() };

  async function collectOne(sub: string, r: SubredditResult): Promise<void> {
    const t = now().getTime();
    const horizon = t - horizonHours * 3_600_000;
    const refreshFrom = t - o.refreshHours * 3_600_000;
    const seen = new Set<string>();
    let after: string | undefined;
    while (r.pages < maxPages) {
      const page = await client.newPosts(sub, after, run.signal);
      r.pages++;
      // A listing shifts while it is paged: a post seen on the previous page can come again.
      const posts = page.posts.filter((p) => !seen.has(p.id)).map((p) => ({ ...p, subreddit: p.subreddit || sub }));
      for (const p of posts) seen.add(p.id);
      const stored = await storedPostIds(o.db, posts.map((p) => p.id));
      const write: PostRow[] = [];
      for (const p of posts) {
        const created = p.created_utc.getTime();
        if (created < horizon) continue;
        r.seen++;
        if (stored.has(p.id) && created < refreshFrom) r.unchanged++;
        else write.push(p);
      }
      const w = await upsertPosts(o.db, write);
      r.inserted += w.inserted;
      r.updated += w.updated;
      const oldest = Math.min(...page.posts.map((p) => p.created_utc.getTime()));
      const metStored = page.posts.some((p) => stored.has(p.id));
      if (!page.after || page.posts.length === 0 || oldest < horizon || (metStored && oldest < refreshFrom)) break;
      after = page.after;
    }
  }
}
