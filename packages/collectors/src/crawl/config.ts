import { readFileSync } from 'node:fs';
import { ConfigError, httpUrl, int, optionalStr, PermanentError, resolveFromRoot, str, type ConfigOf, type Field, type Logger } from '@wombat/core/platform';
import type { Kysely } from 'kysely';
import { crawlPrices, type PriceCrawlResult } from './price-crawl.ts';
import { collectPosts, type PostCollectionResult } from './posts.ts';
import { parsePriceSources } from './sources.ts';
import type { CrawlDb } from './store.ts';

const SUBREDDIT = /^[A-Za-z0-9_]{2,21}$/;

function subreddits(env: string, doc: string): Field<string[] | undefined> {
  return {
    env,
    doc,
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return undefined;
      const items = raw.split(',').map((s) => s.trim().replace(/^\/?r\//i, '')).filter(Boolean);
      const bad = items.filter((s) => !SUBREDDIT.test(s));
      if (bad.length > 0) throw new Error(`has ${bad.map((b) => `"${b}"`).join(', ')}: subreddit names are 2-21 letters, digits or _ (without r/)`);
      return [...new Set(items)];
    },
  };
}

/** The variables the crawls read (worker and scripts); the engine reads the schedule times itself. */
export const crawlFields = {
  priceCrawlSources: optionalStr('PRICE_CRAWL_SOURCES', 'sources file of the price crawl, JSON or YAML (relative to the checkout); unset: no price crawl'),
  crawlUserAgent: str('CRAWL_USER_AGENT', 'User-Agent of the price crawl: who runs it and how to reach them (the sources file may override it)', {
    default: 'WombatCrawler/0.1 (+https://github.com/wombat-etl/wombat)',
  }),
  priceCrawlTimeoutMs: int('PRICE_CRAWL_TIMEOUT_MS', 'deadline of one page request of the price crawl, in ms', { default: 20_000, min: 100, max: 300_000 }),
  priceCrawlRetries: int('PRICE_CRAWL_RETRIES', 'retries of one page after a network fault, timeout, 408, 429 or 5xx', { default: 3, min: 0, max: 10 }),
  redditSubreddits: subreddits('REDDIT_SUBREDDITS', 'subreddits of the community-post collection, comma-separated (e.g. hardware,korea); unset: no collection'),
  redditBaseUrl: httpUrl('REDDIT_BASE_URL', 'Reddit site: public JSON listings and the OAuth token endpoint', { default: 'https://www.reddit.com' }),
  redditOauthBaseUrl: httpUrl('REDDIT_OAUTH_BASE_URL', 'Reddit OAuth API host, used when REDDIT_CLIENT_ID is set', { default: 'https://oauth.reddit.com' }),
  redditClientId: optionalStr('REDDIT_CLIENT_ID', 'Reddit app (script or web app) client id for an app-only OAuth token; unset: public JSON', { secret: true }),
  redditClientSecret: optionalStr('REDDIT_CLIENT_SECRET', 'Reddit app client secret (set together with REDDIT_CLIENT_ID)', { secret: true }),
  redditUserAgent: str('REDDIT_USER_AGENT', "User-Agent for Reddit, in Reddit's form <platform>:<app id>:<version> (by /u/<name>)", {
    default: 'linux:wombat-collector:0.1 (by /u/wombat-operator)',
  }),
  redditHorizonHours: int('REDDIT_HORIZON_HOURS', 'paging stops at posts older than this many hours', { default: 72, min: 1, max: 8760 }),
  redditRefreshHours: int('REDDIT_REFRESH_HOURS', 'stored posts younger than this many hours get score and comments refreshed', { default: 24, min: 0, max: 8760 }),
  redditMaxPages: int('REDDIT_MAX_PAGES', 'listing pages (100 posts each) per subreddit and run at most', { default: 10, min: 1, max: 100 }),
};

export type CrawlConfig = ConfigOf<typeof crawlFields>;

/**
 * Problems single fields cannot see, the sources file's included: it is read and
 * checked here so a bad file stops the process at start, every bad entry named
 * (`sourcesFile: false` skips it, for a process that never crawls prices).
 */
export function crawlConfigProblems(config: CrawlConfig, opts: { sourcesFile?: boolean } = {}): string[] {
  const problems: string[] = [];
  if (Boolean(config.redditClientId) !== Boolean(config.redditClientSecret)) problems.push('REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET must be set together');
  if (config.priceCrawlSources && opts.sourcesFile !== false) {
    const file = resolveFromRoot(config.priceCrawlSources);
    try {
      parsePriceSources(readFileSync(file, 'utf8'), file);
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else problems.push(`PRICE_CRAWL_SOURCES: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return problems;
}

export interface Crawls {
  crawlPrices(o: { runId?: string; sources?: string[]; signal?: AbortSignal; onProgress?: (fraction: number, message?: string) => void }): Promise<PriceCrawlResult>;
  collectPosts(o: {
    subreddits?: string[];
    horizonHours?: number;
    maxPages?: number;
    signal?: AbortSignal;
    onProgress?: (fraction: number, message?: string) => void;
  }): Promise<PostCollectionResult>;
}

/** The crawls as a worker or a script runs them; the sources file is read again on every run. */
export function createCrawls(config: CrawlConfig, deps: { log: Logger; db?: Kysely<any> }): Crawls { // eslint-disable-line @typescript-eslint/no-explicit-any
  const db = deps.db as CrawlDb | undefined;
  return {
    async crawlPrices(run) {
      if (!config.priceCrawlSources) throw new PermanentError('price_crawl_not_configured', 'the price crawl is not configured: set PRICE_CRAWL_SOURCES to a sources file');
      return crawlPrices(
        {
          ...(db ? { db } : {}),
          sourcesFile: resolveFromRoot(config.priceCrawlSources),
          userAgent: config.crawlUserAgent,
          timeoutMs: config.priceCrawlTimeoutMs,
          retries: config.priceCrawlRetries,
          retryBaseDelayMs: 1000,
          log: deps.log,
        },
        run,
      );
    },
    async collectPosts(run) {
      const subs = run.subreddits ?? config.redditSubreddits;
      if (!subs || subs.length === 0) throw new PermanentError('post_collection_not_configured', 'no subreddits: set REDDIT_SUBREDDITS or name them in the job params');
      if (!db) throw new PermanentError('no_database', 'the post collection needs a database (DATABASE_URL)');
      return collectPosts(
        {
          db,
          baseUrl: config.redditBaseUrl,
          oauthBaseUrl: config.redditOauthBaseUrl,
          ...(config.redditClientId && config.redditClientSecret ? { clientId: config.redditClientId, clientSecret: config.redditClientSecret } : {}),
          userAgent: config.redditUserAgent,
          subreddits: subs,
          horizonHours: config.redditHorizonHours,
          refreshHours: config.redditRefreshHours,
          maxPages: config.redditMaxPages,
          log: deps.log,
        },
        { ...run, subreddits: subs },
      );
    },
  };
}
