import { AppError, PermanentError, type Logger } from '@wombat/core/platform';
import type { Timeframe } from '@wombat/core/jobs';
import { BudgetBannedError } from './rate-limit.ts';
import { floorToTimeframe, type Candle } from './candle.ts';
import { RetryableError } from './errors.ts';
import { header, httpRequest, parseJson, withRetries, type HttpResponse } from './http.ts';
import { defaultLimiter } from './limiter-default.ts';
import type { Budget, Limiter, Priority } from './rate-limit.ts';

/** Upbit quotation API (EXCHANGES.md §1): public, JSON, 10 requests/s per IP per group. */
export interface UpbitClientOptions {
  baseUrl: string;
  requestsPerSecond?: number;
  /** Upbit's per-minute figure (`Remaining-Req: min=`), kept as a second limit. */
  requestsPerMinute?: number;
  /** Ban recorded for a 418 without Retry-After. */
  banMs?: number;
  /** Where the budget lives: shared through PostgreSQL, or this process only. */
  limiter?: Limiter;
  timeoutMs?: number;
  retries?: number;
  retryBaseDelayMs?: number;
  log: Logger;
}

export interface UpbitMarket {
  market: string;
  koreanName: string;
  englishName: string;
}

export const UPBIT_PAGE_SIZE = 200;

const PATHS: Record<Timeframe, string> = {
  '1m': 'minutes/1',
  '3m': 'minutes/3',
  '5m': 'minutes/5',
  '10m': 'minutes/10',
  '15m': 'minutes/15',
  '30m': 'minutes/30',
  '1H': 'minutes/60',
  '4H': 'minutes/240',
  '1D': 'days',
  '1W': 'weeks',
  '1M': 'months',
};

/** How a call waits for the budget: its priority among this process's calls, and who hears about pauses. */
export interface CallOptions {
  signal?: AbortSignal;
  priority?: Priority;
  onWait?: (message: string) => void;
}

const GROUPS = ['market', 'candles'] as const;
type Group = (typeof GROUPS)[number];

export interface UpbitClient {
  readonly baseUrl: string;
  markets(signal?: AbortSignal): Promise<UpbitMarket[]>;
  /** Up to `count` candles that end at or before `to` (exclusive end), oldest first. */
  candlesBefore(market: string, tf: Timeframe, to: Date | undefined, count: number, call?: CallOptions): Promise<Candle[]>;
  /**
   * Every candle starting in [from, end), walking `to` backwards one page at a
   * time. A short page means the market has no older candles (listed later, or
   * the start of its history); gaps in trading are simply absent candles.
   */
  backfill(market: string, tf: Timeframe, from: Date, end: Date, opts?: CallOptions & { onPage?: (cursor: Date, fetched: number) => void }): Promise<{ candles: Candle[]; requests: number }>;
  requestCount(): number;
}

export function createUpbitClient(opts: UpbitClientOptions): UpbitClient {
  const baseUrl = opts.baseUrl.replace(/\/+$/, '');
  const perSecond = opts.requestsPerSecond ?? 10;
  const limiter = opts.limiter ?? defaultLimiter();
  const host = new URL(baseUrl).host;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  // Upbit counts per IP and group: every process on this database shares these.
  const budgets = Object.fromEntries(
    GROUPS.map((g) => [
      g,
      limiter.budget(`upbit:${host}:${g}`, {
        limits: [
          { limit: perSecond, windowMs: 1000 },
          { limit: opts.requestsPerMinute ?? 600, windowMs: 60_000 },
        ],
        holdMs: timeoutMs + 1000,
      }),
    ]),
  ) as Record<Group, Budget>;
  let requests = 0;

  async function call(group: Group, path: string, query: Record<string, string>, what: string, c: CallOptions = {}): Promise<unknown> {
    const url = `${baseUrl}/v1/${path}?${new URLSearchParams(query).toString()}`;
    const signal = c.signal;
    return withRetries(
      what,
      async () => {
        const res = await budgets[group].schedule(
          () => {
            requests++;
            return httpRequest(url, { ...(signal ? { signal } : {}), timeoutMs, headers: { accept: 'application/json' } });
          },
          { ...(signal ? { signal } : {}), ...(c.priority ? { priority: c.priority } : {}), ...(c.onWait ? { onWait: c.onWait } : {}) },
        ).catch((err: unknown) => {
          if (err instanceof BudgetBannedError) throw new PermanentError('upbit_banned', `${what}: ${err.message}; collection stopped`, { cause: err });
          throw err;
        });
        return interpret(res, group, what, c);
      },
      { retries: opts.retries ?? 5, baseDelayMs: opts.retryBaseDelayMs ?? 250, maxDelayMs: 10_000, log: opts.log, ...(signal ? { signal } : {}) },
    );
  }

  async function interpret(res: HttpResponse, group: Group, what: string, c: CallOptions): Promise<unknown> {
    if (res.status === 200) return parseJson(res, what);
    const retryAfterMs = retryAfter(res);
    if (res.status === 429) {
      // Back off the whole group in every process before anyone calls again: continuing after a 429 earns a 418.
      const pauseMs = retryAfterMs ?? 1000;
      await budgets[group].pause(pauseMs, 'upbit_429', `Upbit answered 429 too many requests (${what})`);
      c.onWait?.(`Upbit answered 429: every process paused ${pauseMs} ms`);
      throw new RetryableError('upbit_429', `${what}: Upbit answered 429 too many requests`, { rateLimited: true, retryAfterMs: pauseMs });
    }
    if (res.status === 418) {
      // The ban is on the IP, so on every group, and binds every process sharing the budget.
      const banMs = retryAfterMs ?? opts.banMs ?? 60_000;
      const until = new Date(Date.now() + banMs).toISOString();
      const message = `Upbit banned this IP (HTTP 418) for about ${Math.round(banMs / 1000)} s, until about ${until}`;
      await Promise.all(GROUPS.map((g) => budgets[g].ban(banMs, 'upbit_banned', message)));
      c.onWait?.(message);
      throw new PermanentError('upbit_banned', `${what}: ${message}; collection stopped: ${res.text.slice(0, 120)}`);
    }
    if (res.status >= 500) throw new RetryableError('upbit_5xx', `${what}: Upbit answered ${res.status}`);
    const message = errorMessage(res);
    if (res.status === 404) throw new PermanentError('unknown_symbol', `${what}: Upbit does not know this market (404 ${message})`);
    throw new PermanentError('upbit_rejected', `${what}: Upbit rejected the request (${res.status} ${message})`);
  }

  const client: UpbitClient = {
    baseUrl,
    async markets(signal) {
      const body = await call('market', 'market/all', { is_details: 'false' }, 'Upbit market list', signal ? { signal } : {});
      return parseMarkets(body);
    },
    async candlesBefore(market, tf, to, count, c = {}) {
      const query: Record<string, string> = { market, count: String(count) };
      if (to) query.to = to.toISOString().replace(/\.\d{3}Z$/, 'Z');
      const what = `Upbit ${tf} candles of ${market}`;
      const body = await call('candles', `candles/${PATHS[tf]}`, query, what, c);
      return parseCandles(body, market, tf, what);
    },
    async backfill(market, tf, from, end, o = {}) {
      const out: Candle[] = [];
      let cursor = end;
      let pages = 0;
      while (cursor > from) {
        const page = await client.candlesBefore(market, tf, cursor, UPBIT_PAGE_SIZE, o);
        pages++;
        for (const c of page) if (c.time >= from && c.time < end) out.push(c);
        if (page.length < UPBIT_PAGE_SIZE) break;
        const oldest = page[0]!.time;
        if (oldest >= cursor) throw new AppError('exchange_inconsistent', `Upbit returned candles at or after to=${cursor.toISOString()} for ${market}`);
        cursor = oldest;
        o.onPage?.(cursor, out.length);
      }
      return { candles: out, requests: pages };
    },
    requestCount: () => requests,
  };
  return client;
}

function retryAfter(res: HttpResponse): number | undefined {
  const v = header(res, 'retry-after');
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v) * 1000;
}

function errorMessage(res: HttpResponse): string {
  try {
    const body = JSON.parse(res.text) as { error?: { message?: unknown } };
    if (typeof body.error?.message === 'string') return body.error.message;
  } catch {
    // Not the JSON error envelope; show the raw text.
  }
  return res.text.slice(0, 120);
}

function malformed(what: string, problem: string): RetryableError {
  return new RetryableError('malformed_body', `${what}: unexpected response: ${problem}`);
}

export function parseMarkets(body: unknown): UpbitMarket[] {
  const what = 'Upbit market list';
  if (!Array.isArray(body)) throw malformed(what, 'not an array');
  return body.map((m: unknown, i) => {
    const r = m as Record<string, unknown>;
    if (!r || typeof r.market !== 'string' || !/^[A-Z0-9]+-[A-Z0-9]+$/.test(r.market) || typeof r.korean_name !== 'string' || typeof r.english_name !== 'string') {
      throw malformed(what, `element ${i} lacks market/korean_name/english_name`);
    }
    return { market: r.market, koreanName: r.korean_name, englishName: r.english_name };
  });
}

const NAIVE_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/;

/** Strictly validates a candle page (newest first upstream) and returns it oldest first. */
export function parseCandles(body: unknown, market: string, tf: Timeframe, what: string): Candle[] {
  if (!Array.isArray(body)) throw malformed(what, 'not an array');
  const out: Candle[] = [];
  for (const [i, raw] of body.entries()) {
    const r = raw as Record<string, unknown>;
    if (!r || typeof r !== 'object') throw malformed(what, `element ${i} is not an object`);
    if (r.market !== market) throw malformed(what, `element ${i} is for market ${String(r.market)}`);
    if (typeof r.candle_date_time_utc !== 'string' || !NAIVE_UTC.test(r.candle_date_time_utc)) {
      throw malformed(what, `element ${i} has candle_date_time_utc ${JSON.stringify(r.candle_date_time_utc)}`);
    }
    const time = new Date(`${r.candle_date_time_utc}Z`);
    if (floorToTimeframe(tf, time).getTime() !== time.getTime()) throw malformed(what, `candle ${r.candle_date_time_utc} is not aligned to ${tf}`);
    const nums = ['opening_price', 'high_price', 'low_price', 'trade_price', 'candle_acc_trade_volume', 'candle_acc_trade_price'] as const;
    for (const k of nums) {
      if (typeof r[k] !== 'number' || !Number.isFinite(r[k]) || (r[k] as number) < 0) throw malformed(what, `element ${i} field ${k} is ${JSON.stringify(r[k])}`);
    }
    const c: Candle = {
      time,
      open: r.opening_price as number,
      high: r.high_price as number,
      low: r.low_price as number,
      close: r.trade_price as number,
      volume: r.candle_acc_trade_volume as number,
      quoteVolume: r.candle_acc_trade_price as number,
    };
    if (c.high < c.low) throw malformed(what, `candle ${r.candle_date_time_utc} has high < low`);
    out.push(c);
  }
  out.reverse();
  for (let i = 1; i < out.length; i++) {
    if (out[i]!.time <= out[i - 1]!.time) throw malformed(what, 'candles are not strictly newest first');
  }
  return out;
}
