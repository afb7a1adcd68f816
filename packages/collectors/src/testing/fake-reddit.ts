import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from './fake-common.ts';

/**
 * A local Reddit: `/r/<sub>/new.json` (public) and `/r/<sub>/new` on the same
 * server as the OAuth host (bearer token required), `POST /api/v1/access_token`
 * (client_credentials, HTTP Basic), listings of up to 100 posts newest first
 * paged with `after`, a request budget per client in fixed windows with
 * X-Ratelimit-Used/Remaining/Reset on every answer and 429 past it, private and
 * unknown subreddits, and injectable faults.
 */
export interface FakePost {
  id: string;
  subreddit: string;
  title: string;
  author: string;
  created_utc: number;
  score: number;
  num_comments: number;
  url: string;
  permalink: string;
  link_flair_text: string | null;
  selftext: string;
  over_18: boolean;
  removed_by_category: string | null;
}

export interface FakeRedditOptions {
  clients?: Record<string, string>;
  /** Requests per window per client (OAuth client id, or "public"). */
  limit?: number;
  windowSeconds?: number;
  tokenExpiresInSeconds?: number;
}

export type RedditFault = '500' | '429' | 'timeout' | 'malformed';

export interface FakeReddit {
  url: string;
  /** Adds posts (any order); the listing sorts them newest first. */
  addPosts(posts: FakePost[]): void;
  updatePost(id: string, change: Partial<FakePost>): void;
  setPrivate(subreddit: string): void;
  inject(fault: RedditFault, count?: number): void;
  /** Invalidates every token issued so far (a listing then answers 401). */
  revokeTokens(): void;
  tokensIssued(): number;
  requests: { path: string; status: number; client: string; userAgent: string | undefined; at: number }[];
  close(): Promise<void>;
}

/** Posts of one subreddit, newest first, `created` seconds apart from `newest` (unix seconds) backwards. */
export function makePosts(subreddit: string, count: number, newest: number, stepSeconds: number, idPrefix = subreddit.slice(0, 3)): FakePost[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${idPrefix}${i.toString(36)}`,
    subreddit,
    title: `post ${i} of r/${subreddit}`,
    author: `user${i % 7}`,
    created_utc: newest - i * stepSeconds,
    score: 10 + i,
    num_comments: i % 5,
    url: `https://example.com/${i}`,
    permalink: `/r/${subreddit}/comments/${idPrefix}${i.toString(36)}/post_${i}/`,
    link_flair_text: i % 3 === 0 ? 'Discussion' : null,
    selftext: '',
    over_18: false,
    removed_by_category: null,
  }));
}

export async function startFakeReddit(opts: FakeRedditOptions = {}): Promise<FakeReddit> {
  const clients = opts.clients ?? {};
  const limit = opts.limit ?? 100;
  const windowMs = (opts.windowSeconds ?? 600) * 1000;
  const posts = new Map<string, FakePost>();
  const privateSubs = new Set<string>();
  const tokens = new Map<string, string>();
  const windows = new Map<string, { start: number; used: number }>();
  const faults: RedditFault[] = [];
  const requests: FakeReddit['requests'] = [];
  let issued = 0;

  function budget(client: string, now: number): { ok: boolean; headers: Record<string, string> } {
    let w = windows.get(client);
    if (!w || now >= w.start + windowMs) {
      w = { start: now, used: 0 };
      windows.set(client, w);
    }
    const ok = w.used < limit;
    if (ok) w.used++;
    const reset = Math.max(1, Math.ceil((w.start + windowMs - now) / 1000));
    return { ok, headers: { 'x-ratelimit-used': String(w.used), 'x-ratelimit-remaining': (limit - w.used).toFixed(1), 'x-ratelimit-reset': String(reset) } };
  }

  function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): number {
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
    res.end(JSON.stringify(body));
    return status;
  }

  async function handle(req: IncomingMessage, res: ServerResponse, u: URL): Promise<{ status: number; client: string }> {
    if (req.method === 'POST' && u.pathname === '/api/v1/access_token') {
      const body = new URLSearchParams(await readBody(req));
      const [id, secret] = Buffer.from(String(req.headers.authorization ?? '').replace(/^Basic /i, ''), 'base64').toString('utf8').split(':');
      if (!id || clients[id] === undefined || clients[id] !== secret) return { status: json(res, 401, { message: 'Unauthorized', error: 401 }), client: id ?? '' };
      if (body.get('grant_type') !== 'client_credentials') return { status: json(res, 400, { error: 'unsupported_grant_type' }), client: id };
      const token = `-${randomBytes(12).toString('hex')}`;
      tokens.set(token, id);
      issued++;
      return { status: json(res, 200, { access_token: token, token_type: 'bearer', expires_in: opts.tokenExpiresInSeconds ?? 86400, scope: '*' }), client: id };
    }
    const m = /^\/r\/([A-Za-z0-9_]+)\/new(\.json)?$/.exec(u.pathname);
    if (req.method !== 'GET' || !m) return { status: json(res, 404, { message: 'Not Found', error: 404 }), client: '' };
    const sub = m[1]!;
    let client = 'public';
    if (!m[2]) {
      const auth = String(req.headers.authorization ?? '');
      const id = tokens.get(auth.replace(/^bearer /i, ''));
      if (!id) return { status: json(res, 401, { message: 'Unauthorized', error: 401 }, { 'www-authenticate': 'Bearer realm="reddit", error="invalid_token"' }), client: '' };
      client = id;
    }
    const b = budget(client, Date.now());
    const fault = faults.shift();
    if (fault === 'timeout') return { status: 0, client };
    if (fault === '500') return { status: json(res, 500, { message: 'Internal Server Error', error: 500 }, b.headers), client };
    if (fault === 'malformed') {
      res.writeHead(200, { 'content-type': 'text/html', ...b.headers });
      res.end('<html><body>our CDN is having a moment</body></html>');
      return { status: 200, client };
    }
    // An injected 429 is a short burst limit: nothing left, back in a second.
    if (fault === '429') return { status: json(res, 429, { message: 'Too Many Requests', error: 429 }, { ...b.headers, 'x-ratelimit-remaining': '0.0', 'x-ratelimit-reset': '1' }), client };
    if (!b.ok) return { status: json(res, 429, { message: 'Too Many Requests', error: 429 }, b.headers), client };
    if (privateSubs.has(sub.toLowerCase())) return { status: json(res, 403, { reason: 'private', message: 'Forbidden', error: 403 }, b.headers), client };
    const all = [...posts.values()].filter((p) => p.subreddit.toLowerCase() === sub.toLowerCase()).sort((a, c) => c.created_utc - a.created_utc);
    if (all.length === 0) {
      res.writeHead(302, { location: `/subreddits/search.json?q=${sub}`, ...b.headers });
      res.end();
      return { status: 302, client };
    }
    const size = Math.min(100, Math.max(1, Number(u.searchParams.get('limit') ?? 25)));
    const after = u.searchParams.get('after');
    const start = after ? all.findIndex((p) => `t3_${p.id}` === after) + 1 : 0;
    // An `after` that is gone from the listing gives an empty page, as Reddit does.
    const slice = after && start === 0 ? [] : all.slice(start, start + size);
    const last = slice.at(-1);
    const more = last !== undefined && start + size < all.length;
    const body = {
      kind: 'Listing',
      data: { after: more ? `t3_${last.id}` : null, dist: slice.length, before: null, children: slice.map((p) => ({ kind: 't3', data: { ...p, name: `t3_${p.id}` } })) },
    };
    return { status: json(res, 200, body, b.headers), client };
  }

  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://reddit');
    handle(req, res, u)
      .then(({ status, client }) => requests.push({ path: u.pathname + u.search, status, client, userAgent: req.headers['user-agent'], at: Date.now() }))
      .catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(err));
      });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    addPosts(list) {
      for (const p of list) posts.set(p.id, { ...p });
    },
    updatePost(id, change) {
      const p = posts.get(id);
      if (!p) throw new Error(`no post ${id}`);
      posts.set(id, { ...p, ...change });
    },
    setPrivate: (s) => void privateSubs.add(s.toLowerCase()),
    inject(fault, count = 1) {
      for (let i = 0; i < count; i++) faults.push(fault);
    },
    revokeTokens: () => tokens.clear(),
    tokensIssued: () => issued,
    requests,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
