import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { AppError, PermanentError, type Logger } from '@wombat/core/platform';
import { RetryableError } from '../errors.ts';
import { header, httpRequest, parseJson, withRetries, type HttpResponse } from '../http.ts';
import { redditBudget, type RedditBudget } from './reddit-budget.ts';
import type { CrawlDb, PostRow } from './store.ts';

/**
 * Reddit's listing API: `/r/<sub>/new`, 100 posts a page, newest first, paged
 * with `after`. With a client id and secret it asks for an app-only OAuth token
 * (client_credentials), shared through PostgreSQL like the KIS token, and reads
 * from the OAuth host; otherwise it reads the public `.json` listing. Either way
 * the X-Ratelimit-* headers bind every process (reddit-budget.ts).
 */
export interface RedditClientOptions {
  /** Public site: public JSON listings and the token endpoint (https://www.reddit.com). */
  baseUrl: string;
  /** OAuth API host (https://oauth.reddit.com). */
  oauthBaseUrl: string;
  clientId?: string;
  clientSecret?: string;
  /** Reddit asks for `<platform>:<app id>:<version> (by /u/<name>)`. */
  userAgent: string;
  db?: CrawlDb;
  log: Logger;
  timeoutMs?: number;
  retries?: number;
  retryBaseDelayMs?: number;
}

export interface ListingPage {
  posts: PostRow[];
  after: string | null;
}

export interface RedditClient {
  mode: 'oauth' | 'public';
  newPosts(subreddit: string, after: string | undefined, signal?: AbortSignal): Promise<ListingPage>;
  requests(): number;
}

/** A token this close to expiry is replaced rather than used. */
const TOKEN_MARGIN_MS = 5 * 60_000;
const processTokens = new Map<string, { token: string; expiresAt: number }>();

export function createRedditClient(o: RedditClientOptions): RedditClient {
  const baseUrl = o.baseUrl.replace(/\/+$/, '');
  const oauthBaseUrl = o.oauthBaseUrl.replace(/\/+$/, '');
  const oauth = Boolean(o.clientId && o.clientSecret);
  const tokenUrl = `${baseUrl}/api/v1/access_token`;
  const keyHash = oauth ? createHash('sha256').update(`${tokenUrl}\n${o.clientId}\n${o.clientSecret}`).digest('hex') : '';
  // Reddit counts per OAuth client, or per address for the public JSON.
  const timeoutMs = o.timeoutMs ?? 15_000;
  // A window's first request holds it until its answer: at most its deadline (and a second).
  const budget: RedditBudget = redditBudget({ ...(o.db ? { db: o.db } : {}), clientKey: oauth ? `oauth:${keyHash.slice(0, 32)}` : `public:${baseUrl}`, probeHoldMs: timeoutMs + 1000 });
  const retry = { retries: o.retries ?? 4, baseDelayMs: o.retryBaseDelayMs ?? 500, maxDelayMs: 60_000, log: o.log };
  let sent = 0;

  const fresh = (expiresAt: number) => expiresAt - TOKEN_MARGIN_MS > Date.now();

  async function issue(signal?: AbortSignal): Promise<{ token: string; issuedAt: Date; expiresAt: Date }> {
    return withRetries(
      'Reddit token',
      async () => {
        sent++;
        const res = await httpRequest(tokenUrl, {
          method: 'POST',
          headers: {
            authorization: `Basic ${Buffer.from(`${o.clientId}:${o.clientSecret}`).toString('base64')}`,
            'content-type': 'application/x-www-form-urlencoded',
            'user-agent': o.userAgent,
          },
          body: 'grant_type=client_credentials',
          timeoutMs,
          ...(signal ? { signal } : {}),
        });
        if (res.status === 429 || res.status >= 500) throw new RetryableError(`reddit_${res.status}`, `Reddit token: server answered ${res.status}`, { rateLimited: res.status === 429 });
        const body = parseJson(res, 'Reddit token') as Record<string, unknown>;
        if (res.status !== 200 || typeof body.access_token !== 'string' || body.access_token === '') {
          throw new PermanentError('reddit_auth_failed', `Reddit refused to issue a token (${res.status} ${String(body.error ?? body.message ?? '')}); check REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET`);
        }
        const expiresInS = Number(body.expires_in ?? 86_400);
        const issuedAt = new Date();
        return { token: body.access_token, issuedAt, expiresAt: new Date(issuedAt.getTime() + (Number.isFinite(expiresInS) ? expiresInS : 3600) * 1000) };
      },
      { ...retry, ...(signal ? { signal } : {}) },
    );
  }

  async function token(signal?: AbortSignal): Promise<string> {
    const cached = processTokens.get(keyHash);
    if (cached && fresh(cached.expiresAt)) return cached.token;
    const t = await obtain(signal);
    processTokens.set(keyHash, t);
    return t.token;
  }

  async function obtain(signal?: AbortSignal): Promise<{ token: string; expiresAt: number }> {
    if (!o.db) {
      const t = await issue(signal);
      return { token: t.token, expiresAt: t.expiresAt.getTime() };
    }
    // One issuer per client across processes: the others wait on the lock and then read its token.
    return o.db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext(${`wombat.reddit_token.${keyHash}`}))`.execute(trx);
      const row = await trx.selectFrom('wombat.reddit_tokens').select(['token', 'expires_at']).where('key_hash', '=', keyHash).executeTakeFirst();
      if (row && fresh(row.expires_at.getTime())) return { token: row.token, expiresAt: row.expires_at.getTime() };
      const issued = await issue(signal);
      const values = { token: issued.token, issued_at: issued.issuedAt, expires_at: issued.expiresAt, updated_at: new Date() };
      await trx
        .insertInto('wombat.reddit_tokens')
        .values({ key_hash: keyHash, ...values })
        .onConflict((oc) => oc.column('key_hash').doUpdateSet(values))
        .execute();
      o.log.info({ expiresAt: issued.expiresAt.toISOString() }, 'Reddit token issued');
      return { token: issued.token, expiresAt: issued.expiresAt.getTime() };
    });
  }

  async function forget(stale: string): Promise<void> {
    if (processTokens.get(keyHash)?.token === stale) processTokens.delete(keyHash);
    await o.db?.deleteFrom('wombat.reddit_tokens').where('key_hash', '=', keyHash).where('token', '=', stale).execute();
  }

  async function observe(res: HttpResponse): Promise<void> {
    const num = (name: string) => {
      const v = header(res, name);
      const n = v === undefined ? NaN : Number(v);
      return Number.isFinite(n) ? n : undefined;
    };
    const remaining = num('x-ratelimit-remaining');
    const used = num('x-ratelimit-used');
    const resetSeconds = num('x-ratelimit-reset');
    await budget.observe({ ...(remaining !== undefined ? { remaining } : {}), ...(used !== undefined ? { used } : {}), ...(resetSeconds !== undefined ? { resetSeconds } : {}) });
  }

  return {
    mode: oauth ? 'oauth' : 'public',
    requests: () => sent,
    async newPosts(subreddit, after, signal) {
      const what = `Reddit r/${subreddit}/new`;
      const query = new URLSearchParams({ limit: '100', raw_json: '1' });
      if (after) query.set('after', after);
      let renewed = false;
      return withRetries(
        what,
        async () => {
          await budget.take(signal);
          const tok = oauth ? await token(signal) : undefined;
          const url = oauth ? `${oauthBaseUrl}/r/${subreddit}/new?${query.toString()}` : `${baseUrl}/r/${subreddit}/new.json?${query.toString()}`;
          sent++;
          const res = await httpRequest(url, {
            headers: { 'user-agent': o.userAgent, accept: 'application/json', ...(tok ? { authorization: `bearer ${tok}` } : {}) },
            timeoutMs,
            ...(signal ? { signal } : {}),
          });
          await observe(res);
          if (res.status === 429) {
            const reset = Number(header(res, 'x-ratelimit-reset') ?? header(res, 'retry-after') ?? 60);
            const resetSeconds = Number.isFinite(reset) ? reset : 60;
            await budget.exhausted(resetSeconds);
            // The budget makes the next attempt wait for the reset; no backoff on top of it.
            throw new RetryableError('reddit_429', `${what}: too many requests`, { rateLimited: true, retryAfterMs: 0 });
          }
          if (res.status === 401 && tok && !renewed) {
            renewed = true;
            await forget(tok);
            throw new RetryableError('reddit_token_expired', `${what}: token refused (401)`, { retryAfterMs: 0 });
          }
          if (res.status >= 500) throw new RetryableError(`reddit_${res.status}`, `${what}: server answered ${res.status}`);
          if (res.status >= 300 && res.status < 400) {
            // Reddit sends an unknown subreddit to its search page.
            throw new PermanentError('subreddit_not_found', `r/${subreddit} does not exist (Reddit redirected to ${header(res, 'location') ?? 'elsewhere'})`);
          }
          if (res.status === 403 || res.status === 404) {
            const reason = String((parseJsonSafe(res.text) as { reason?: unknown } | undefined)?.reason ?? (res.status === 404 ? 'not found' : 'forbidden'));
            throw new PermanentError('subreddit_unavailable', `r/${subreddit} cannot be read: ${reason} (${res.status})`);
          }
          if (res.status !== 200) throw new AppError('reddit_http', `${what}: server answered ${res.status}`);
          return parseListing(parseJson(res, what), subreddit, new Date());
        },
        { ...retry, ...(signal ? { signal } : {}) },
      );
    },
  };
}

function parseJsonSafe(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A listing's t3 children as rows. Throws (retryable) on a body that is not a listing. */
export function parseListing(body: unknown, subreddit: string, fetchedAt: Date): ListingPage {
  const data = (body as { kind?: unknown; data?: { children?: unknown; after?: unknown } } | null)?.data;
  if ((body as { kind?: unknown })?.kind !== 'Listing' || !data || !Array.isArray(data.children)) {
    throw new RetryableError('reddit_malformed', `Reddit r/${subreddit}/new: the answer is not a listing`);
  }
  const posts: PostRow[] = [];
  for (const child of data.children as { kind?: unknown; data?: Record<string, unknown> }[]) {
    if (child?.kind !== 't3' || !child.data) continue;
    const row = postRow(child.data, fetchedAt);
    if (row) posts.push(row);
  }
  return { posts, after: typeof data.after === 'string' && data.after !== '' ? data.after : null };
}

const DELETED_CATEGORIES = new Set(['deleted', 'author']);

export function postRow(d: Record<string, unknown>, fetchedAt: Date): PostRow | undefined {
  if (typeof d.id !== 'string' || typeof d.created_utc !== 'number') return undefined;
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  const selftext = str(d.selftext) ?? '';
  const category = str(d.removed_by_category);
  const author = str(d.author);
  const deleted = (category !== null && DELETED_CATEGORIES.has(category)) || selftext === '[deleted]';
  const removed = !deleted && ((category !== null && !DELETED_CATEGORIES.has(category)) || selftext === '[removed]');
  return {
    id: d.id,
    subreddit: str(d.subreddit) ?? '',
    title: str(d.title) ?? '',
    // "[deleted]" is a placeholder, not a name: the author first collected is kept.
    author: author === '[deleted]' ? null : author,
    created_utc: new Date(Math.round(d.created_utc * 1000)),
    score: Number.isFinite(d.score) ? Math.trunc(d.score as number) : 0,
    num_comments: Number.isFinite(d.num_comments) ? Math.trunc(d.num_comments as number) : 0,
    url: str(d.url),
    permalink: str(d.permalink) ?? '',
    flair: str(d.link_flair_text),
    selftext,
    over_18: d.over_18 === true,
    removed,
    deleted,
    removed_by_category: category,
    fetched_at: fetchedAt,
  };
}
