import type { Kysely } from 'kysely';
import { request, type Dispatcher } from 'undici';
import { AppError, PermanentError, type Logger } from '@wombat/core/platform';
import { RetryableError } from '../errors.ts';
import { withRetries } from '../http.ts';
import { dispatcherFor } from './address-guard.ts';
import { hostSlot, type HostBudget } from './politeness.ts';
import { isAllowed, parseRobots, productToken, type RobotsRules } from './robots.ts';

export interface Page {
  /** Where the page was found after redirects. */
  url: string;
  status: number;
  contentType: string;
  text: string;
}

export interface PageFetcherOptions {
  userAgent: string;
  timeoutMs: number;
  retries: number;
  retryBaseDelayMs: number;
  /** Politeness of a host (before robots.txt's Crawl-delay, which can only slow it down, to one request a minute at most). */
  budgetFor(host: string): HostBudget;
  /** Where the hosts' request budgets are counted: with a database, across processes. */
  db?: Kysely<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  log: Logger;
  maxRedirects?: number;
  maxBytes?: number;
}

export interface PageFetcher {
  /** `privateHosts`: host names this source may reach on private addresses (see address-guard.ts). */
  get(url: string, o: { ignoreRobots: boolean; accept: string; signal?: AbortSignal; privateHosts?: ReadonlySet<string> }): Promise<Page>;
  /** Requests sent, robots.txt included. */
  requests(): number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_RETRY_AFTER_MS = 120_000;

/**
 * A polite GET for one crawl: robots.txt read once per host, requests spaced per
 * host, redirects followed (each hop checked against robots.txt), network
 * faults, timeouts, 408/429/5xx retried with backoff (Retry-After honoured),
 * other 4xx fail at once, bodies decoded by their declared charset.
 */
export function createPageFetcher(o: PageFetcherOptions): PageFetcher {
  const robots = new Map<string, Promise<RobotsRules>>();
  const token = productToken(o.userAgent);
  const maxRedirects = o.maxRedirects ?? 5;
  const maxBytes = o.maxBytes ?? 10_000_000;
  let sent = 0;

  function budget(host: string, rules?: RobotsRules): HostBudget {
    const b = o.budgetFor(host);
    const delay = rules?.crawlDelaySeconds;
    return delay && delay > 0 ? { ...b, requestsPerSecond: Math.min(b.requestsPerSecond, 1 / delay) } : b;
  }

  /** One attempt at one URL, no redirects followed. */
  async function once(url: URL, accept: string, signal: AbortSignal | undefined, rules: RobotsRules | undefined, privateHosts: ReadonlySet<string> | undefined): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
    // Before the host's slot: a refused address costs the host no request.
    const dispatcher = dispatcherFor(url, privateHosts);
    const release = await hostSlot(url.host, budget(url.host, rules), signal, o.db);
    const timeout = AbortSignal.timeout(o.timeoutMs);
    const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
    try {
      sent++;
      const res = await request(url, {
        method: 'GET',
        headers: { 'user-agent': o.userAgent, accept, 'accept-language': 'ko,en;q=0.8' },
        signal: both,
        ...(dispatcher ? { dispatcher } : {}),
      } as unknown as Dispatcher.RequestOptions);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > maxBytes) {
          res.body.destroy();
          throw new PermanentError('page_too_large', `${url.href} is larger than ${maxBytes} bytes`);
        }
        chunks.push(chunk as Buffer);
      }
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (err instanceof AppError) throw err;
      if (timeout.aborted) throw new RetryableError('timeout', `no answer within ${o.timeoutMs} ms from ${url.host}`, { cause: err });
      throw new RetryableError('network', `request to ${url.host} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      release();
    }
  }

  async function attempt(url: URL, accept: string, signal: AbortSignal | undefined, rules: RobotsRules | undefined, privateHosts: ReadonlySet<string> | undefined) {
    const r = await once(url, accept, signal, rules, privateHosts);
    if (r.status === 429 || r.status === 408 || r.status >= 500) {
      const after = retryAfterMs(r.headers['retry-after']);
      throw new RetryableError(`http_${r.status}`, `${url.href} answered ${r.status}`, { ...(after !== undefined ? { retryAfterMs: after } : {}), rateLimited: r.status === 429 });
    }
    return r;
  }

  function retrying<T>(what: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetries(what, fn, { retries: o.retries, baseDelayMs: o.retryBaseDelayMs, maxDelayMs: MAX_RETRY_AFTER_MS, log: o.log, ...(signal ? { signal } : {}) });
  }

  function rulesFor(origin: URL, signal: AbortSignal | undefined, privateHosts: ReadonlySet<string> | undefined): Promise<RobotsRules> {
    // Sources that may and may not reach a private host do not share its answer.
    const key = `${origin.origin}|${privateHosts?.has(origin.hostname.toLowerCase()) ? 'private' : 'public'}`;
    let p = robots.get(key);
    if (!p) {
      p = readRobots(origin, signal, privateHosts);
      robots.set(key, p);
      // A failure is the answer for this crawl (disallow all); an abort is not.
      p.catch(() => robots.delete(key));
    }
    return p;
  }

  /** Why `url` may not be fetched: the host does not answer, its robots.txt fails, or it says no. */
  function disallowed(url: URL, rules: RobotsRules): AppError {
    const why = rules.unreadable;
    if (why && 'unreachable' in why) {
      // Not a robots.txt matter: the page itself would get no answer either.
      return new AppError('host_unreachable', `${url.host} does not answer (${why.unreachable}); check the source's URL and the network`);
    }
    if (why) {
      return new AppError(
        'robots_unreadable',
        `robots.txt of ${url.host} answered ${why.status}, which counts as disallowing every page until it can be read (RFC 9309); try again later`,
      );
    }
    return new PermanentError('robots_disallowed', `robots.txt of ${url.host} disallows ${url.pathname}${url.search} for ${token}; set ignore_robots: true on the source only if the shop allows it`);
  }

  async function readRobots(origin: URL, signal: AbortSignal | undefined, privateHosts: ReadonlySet<string> | undefined): Promise<RobotsRules> {
    let url = new URL('/robots.txt', origin);
    try {
      for (let hop = 0; ; hop++) {
        const r = await retrying(`robots.txt of ${origin.host}`, () => attempt(url, 'text/plain', signal, undefined, privateHosts), signal);
        const location = r.headers.location;
        if (REDIRECTS.has(r.status) && typeof location === 'string' && hop < maxRedirects) {
          url = new URL(location, url);
          continue;
        }
        if (r.status >= 200 && r.status < 300) return parseRobots(decode(r.body, r.headers['content-type']), token);
        // RFC 9309 §2.3.1.3: an unavailable robots.txt (4xx) allows everything.
        if (r.status >= 400 && r.status < 500) return { allowAll: true, rules: [] };
        return { disallowAll: true, rules: [], unreadable: { status: r.status } };
      }
    } catch (err) {
      if (signal?.aborted) throw err;
      // A refused address is not an unreachable robots.txt: the page fails with that reason.
      if (err instanceof AppError && err.code === 'private_address') throw err;
      // §2.3.1.4: unreachable means the crawler must assume everything is disallowed.
      o.log.warn({ host: origin.host, err: (err as Error).message }, 'robots.txt unreachable: the host is treated as disallowing everything');
      // Retries that ran out on a status (5xx, 429) are the server answering; anything else is the host not answering.
      const last = (err as { cause?: { code?: unknown } }).cause?.code;
      const status = typeof last === 'string' && /^http_\d{3}$/.test(last) ? Number(last.slice(5)) : undefined;
      if (status !== undefined) return { disallowAll: true, rules: [], unreadable: { status } };
      // The socket's own words ("getaddrinfo ENOTFOUND shop.example.com"), not the wrappers around them.
      let root = err as Error;
      while (root.cause instanceof Error) root = root.cause;
      return { disallowAll: true, rules: [], unreadable: { unreachable: root.message } };
    }
  }

  return {
    requests: () => sent,
    async get(start, { ignoreRobots, accept, signal, privateHosts }) {
      let url = new URL(start);
      for (let hop = 0; ; hop++) {
        // Checked on every hop, before robots.txt is asked for.
        dispatcherFor(url, privateHosts);
        const rules = ignoreRobots ? undefined : await rulesFor(url, signal, privateHosts);
        if (rules && !isAllowed(rules, url)) throw disallowed(url, rules);
        const r = await retrying(`GET ${url.href}`, () => attempt(url, accept, signal, rules, privateHosts), signal);
        if (REDIRECTS.has(r.status)) {
          const location = r.headers.location;
          if (typeof location !== 'string') throw new PermanentError('bad_redirect', `${url.href} answered ${r.status} without a Location`);
          if (hop >= maxRedirects) throw new PermanentError('too_many_redirects', `${start} redirected more than ${maxRedirects} times`);
          url = new URL(location, url);
          continue;
        }
        if (r.status < 200 || r.status >= 300) throw new PermanentError(`http_${r.status}`, `${url.href} answered ${r.status}`);
        const contentType = String(r.headers['content-type'] ?? '');
        return { url: url.href, status: r.status, contentType, text: decode(r.body, contentType) };
      }
    },
  };
}

function retryAfterMs(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (!s) return undefined;
  const secs = Number(s);
  const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(s) - Date.now();
  return Number.isFinite(ms) ? Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms)) : undefined;
}

/** By the Content-Type charset, else a <meta charset> in the first bytes, else UTF-8 (Korean shops still serve EUC-KR). */
function decode(body: Buffer, contentType: string | string[] | undefined): string {
  const ct = Array.isArray(contentType) ? contentType[0] : contentType;
  let charset = /charset=["']?([\w-]+)/i.exec(ct ?? '')?.[1];
  if (!charset) charset = /<meta[^>]+charset=["']?([\w-]+)/i.exec(body.subarray(0, 2048).toString('latin1'))?.[1];
  try {
    return new TextDecoder(charset ?? 'utf-8').decode(body);
  } catch {
    return new TextDecoder('utf-8').decode(body);
  }
}
