import { createHash, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { PermanentError, type Logger } from '@wombat/core/platform';
import type { Timeframe } from '@wombat/core/jobs';
import { floorToTimeframe, type Candle } from './candle.ts';
import { RetryableError } from './errors.ts';
import { httpRequest, parseJson, withRetries, type HttpResponse } from './http.ts';
import type { CollectorDb } from './pg-store.ts';
import { defaultLimiter } from './limiter-default.ts';
import { BudgetBannedError, sleep, type Limiter } from './rate-limit.ts';
import type { CallOptions } from './upbit.ts';

/** KIS open API, domestic stock (EXCHANGES.md §2): token, daily/weekly/monthly OHLCV. */
export interface KisClientOptions {
  baseUrl: string;
  appKey: string;
  appSecret: string;
  accountType: 'real' | 'mock';
  requestsPerSecond?: number;
  timeoutMs?: number;
  retries?: number;
  retryBaseDelayMs?: number;
  /** Wait after 403 EGW00133 (token issued too recently); KIS states once a minute. */
  tokenRetryDelayMs?: number;
  /** Token requests per app key at most one per this interval, across processes (KIS's notice: 1 a second). */
  tokenIntervalMs?: number;
  /** Where the budgets live: shared through PostgreSQL, or this process only. */
  limiter?: Limiter;
  db?: CollectorDb;
  log: Logger;
}

export const KIS_PAGE_SIZE = 100;
export const KIS_TIMEFRAMES = ['1D', '1W', '1M'] as const satisfies readonly Timeframe[];
const PERIOD_CODE: Record<string, string> = { '1D': 'D', '1W': 'W', '1M': 'M' };
const DAY_MS = 86_400_000;
/** A token this close to expiry is replaced rather than used. */
const TOKEN_MARGIN_MS = 10 * 60_000;
const TOKEN_ERRORS = new Set(['EGW00123', 'EGW00121']);

export interface KisClient {
  token(signal?: AbortSignal): Promise<string>;
  /** Candles starting in [from, end), paged by moving the end date back 100 rows at a time. */
  periodCandles(symbol: string, tf: Timeframe, from: Date, end: Date, opts?: CallOptions & { onPage?: (cursor: Date, fetched: number) => void }): Promise<{ candles: Candle[]; requests: number }>;
  requestCount(): number;
}

/**
 * Tokens by app key, shared by every client in this process; the in-flight
 * issuance is shared too, so concurrent collections ask KIS once (a second
 * request within the minute would be refused with EGW00133).
 */
const processTokens = new Map<string, { token: string; expiresAt: number }>();
const issuing = new Map<string, Promise<{ token: string; expiresAt: number }>>();

/** Identifies a credential pair without storing it: a token belongs to one key and secret on one host. */
export function kisKeyHash(baseUrl: string, appKey: string, appSecret: string): string {
  return createHash('sha256').update(`${baseUrl}\n${appKey}\n${appSecret}`).digest('hex');
}

export function createKisClient(opts: KisClientOptions): KisClient {
  const baseUrl = opts.baseUrl.replace(/\/+$/, '');
  const keyHash = kisKeyHash(baseUrl, opts.appKey, opts.appSecret);
  // KIS counts per app key; its notice: 18/s on a real account, 1/s on a mock one.
  const limit = opts.requestsPerSecond ?? (opts.accountType === 'real' ? 18 : 1);
  const limiter = opts.limiter ?? defaultLimiter();
  const host = new URL(baseUrl).host;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  // Named by a hash, never by the key itself: budget names are visible in the database.
  const budget = limiter.budget(`kis:${host}:${keyHash.slice(0, 16)}`, { limits: [{ limit, windowMs: 1000 }], holdMs: timeoutMs + 1000 });
  const tokenBudget = limiter.budget(`kis-token:${host}:${keyHash.slice(0, 16)}`, { limits: [{ limit: 1, windowMs: opts.tokenIntervalMs ?? 1000 }], holdMs: timeoutMs + 1000 });
  const tokenRetryDelayMs = opts.tokenRetryDelayMs ?? 65_000;
  const retry = { retries: opts.retries ?? 5, baseDelayMs: opts.retryBaseDelayMs ?? 250, maxDelayMs: 10_000, log: opts.log };
  let requests = 0;

  const fresh = (expiresAt: number) => expiresAt - TOKEN_MARGIN_MS > Date.now();

  async function issue(signal?: AbortSignal, onAttempt?: () => Promise<void>): Promise<{ token: string; issuedAt: Date; expiresAt: Date }> {
    return withRetries(
      'KIS token',
      async () => {
        await onAttempt?.();
        const res = await tokenBudget.schedule(
          () => {
            requests++;
            return httpRequest(`${baseUrl}/oauth2/tokenP`, {
              method: 'POST',
              headers: { 'content-type': 'application/json; charset=utf-8' },
              body: JSON.stringify({ grant_type: 'client_credentials', appkey: opts.appKey, appsecret: opts.appSecret }),
              timeoutMs,
              ...(signal ? { signal } : {}),
            });
          },
          signal ? { signal } : {},
        );
        const body = parseJson(res, 'KIS token') as Record<string, unknown>;
        if (body.error_code === 'EGW00133') {
          // Every process waits, not only this one: another request within the interval would be refused too.
          await tokenBudget.pause(tokenRetryDelayMs, 'EGW00133', 'KIS refused a token: issued too recently (EGW00133)');
          throw new RetryableError('kis_token_rate', 'KIS token: issued too recently (EGW00133)', { rateLimited: true, retryAfterMs: tokenRetryDelayMs });
        }
        if (res.status >= 500) throw new RetryableError('kis_5xx', `KIS token: server answered ${res.status}`);
        if (res.status !== 200 || typeof body.access_token !== 'string' || body.access_token === '') {
          throw new PermanentError('kis_auth_failed', `KIS refused to issue a token (${res.status} ${String(body.error_code ?? body.msg_cd ?? '')} ${String(body.error_description ?? body.msg1 ?? '')}); check KIS_APP_KEY and KIS_APP_SECRET`);
        }
        const expiresInS = typeof body.expires_in === 'number' ? body.expires_in : Number(body.expires_in ?? 86_400);
        const issuedAt = new Date();
        return { token: body.access_token, issuedAt, expiresAt: new Date(issuedAt.getTime() + (Number.isFinite(expiresInS) ? expiresInS : 86_400) * 1000) };
      },
      { ...retry, retries: Math.max(retry.retries, 2), ...(signal ? { signal } : {}) },
    );
  }

  async function token(signal?: AbortSignal): Promise<string> {
    const cached = processTokens.get(keyHash);
    if (cached && fresh(cached.expiresAt)) return cached.token;
    let pending = issuing.get(keyHash);
    if (!pending) {
      pending = obtain(signal).finally(() => issuing.delete(keyHash));
      issuing.set(keyHash, pending);
    }
    const t = await pending;
    processTokens.set(keyHash, t);
    return t.token;
  }

  /** Longest one process may hold the right to issue before another takes over (it renews it every attempt). */
  const claimMs = tokenRetryDelayMs + timeoutMs + 30_000;

  /**
   * One issuer per app key across processes, without a transaction or a pooled
   * connection held across the HTTP calls (and the EGW00133 wait): the issuer
   * claims the key's row in one statement and renews the claim every attempt; the
   * others look for the token it stores.
   */
  async function obtain(signal?: AbortSignal): Promise<{ token: string; expiresAt: number }> {
    const db = opts.db;
    if (!db) {
      const t = await issue(signal);
      return { token: t.token, expiresAt: t.expiresAt.getTime() };
    }
    const me = randomUUID();
    let waitMs = 50;
    for (;;) {
      signal?.throwIfAborted();
      const row = await db.selectFrom('wombat.kis_tokens').select(['token', 'expires_at']).where('key_hash', '=', keyHash).executeTakeFirst();
      if (row?.token && row.expires_at && fresh(new Date(row.expires_at).getTime())) return { token: row.token, expiresAt: new Date(row.expires_at).getTime() };
      const claimed = await sql<{ key_hash: string }>`
        insert into wombat.kis_tokens (key_hash, issuing_until, issuing_by) values (${keyHash}, now() + ${`${claimMs} milliseconds`}::interval, ${me})
        on conflict (key_hash) do update set issuing_until = excluded.issuing_until, issuing_by = excluded.issuing_by
        where (wombat.kis_tokens.issuing_until is null or wombat.kis_tokens.issuing_until < now())
          -- Another process may have stored a fresh token since the read above: then it is the one to use.
          and (wombat.kis_tokens.token is null or wombat.kis_tokens.expires_at is null
               or wombat.kis_tokens.expires_at <= now() + ${`${TOKEN_MARGIN_MS} milliseconds`}::interval)
        returning key_hash`.execute(db);
      if (claimed.rows.length > 0) {
        try {
          const renew = async () => {
            await sql`update wombat.kis_tokens set issuing_until = now() + ${`${claimMs} milliseconds`}::interval, last_attempt_at = now() where key_hash = ${keyHash} and issuing_by = ${me}`.execute(db);
          };
          const issued = await issue(signal, renew);
          await sql`update wombat.kis_tokens set token = ${issued.token}, issued_at = ${issued.issuedAt}, expires_at = ${issued.expiresAt},
                      issuing_until = null, issuing_by = null, updated_at = now() where key_hash = ${keyHash}`.execute(db);
          opts.log.info({ expiresAt: issued.expiresAt.toISOString() }, 'KIS token issued');
          return { token: issued.token, expiresAt: issued.expiresAt.getTime() };
        } catch (err) {
          await sql`update wombat.kis_tokens set issuing_until = null, issuing_by = null where key_hash = ${keyHash} and issuing_by = ${me}`.execute(db).catch(() => {});
          throw err;
        }
      }
      // Another process is issuing: its token appears in the row.
      await sleep(waitMs, signal);
      waitMs = Math.min(1000, waitMs * 2);
    }
  }

  async function forget(stale: string): Promise<void> {
    if (processTokens.get(keyHash)?.token === stale) processTokens.delete(keyHash);
    await opts.db?.deleteFrom('wombat.kis_tokens').where('key_hash', '=', keyHash).where('token', '=', stale).execute();
  }

  async function page(symbol: string, tf: Timeframe, date1: string, date2: string, c: CallOptions): Promise<{ candles: Candle[]; rowCount: number }> {
    const signal = c.signal;
    const what = `KIS ${tf} candles of ${symbol}`;
    const query = new URLSearchParams({
      FID_COND_MRKT_DIV_CODE: 'J',
      FID_INPUT_ISCD: symbol,
      FID_INPUT_DATE_1: date1,
      FID_INPUT_DATE_2: date2,
      FID_PERIOD_DIV_CODE: PERIOD_CODE[tf]!,
      FID_ORG_ADJ_PRC: '0',
    });
    const url = `${baseUrl}/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice?${query.toString()}`;
    return withRetries(
      what,
      async () => {
        const tok = await token(signal);
        const res = await budget
          .schedule(
            () => {
              requests++;
              return httpRequest(url, {
                headers: {
                  'content-type': 'application/json; charset=utf-8',
                  authorization: `Bearer ${tok}`,
                  appkey: opts.appKey,
                  appsecret: opts.appSecret,
                  tr_id: 'FHKST03010100',
                  custtype: 'P',
                },
                timeoutMs,
                ...(signal ? { signal } : {}),
              });
            },
            { ...(signal ? { signal } : {}), ...(c.priority ? { priority: c.priority } : {}), ...(c.onWait ? { onWait: c.onWait } : {}) },
          )
          .catch((err: unknown) => {
            if (err instanceof BudgetBannedError) throw new PermanentError('kis_blocked', `${what}: ${err.message}`, { cause: err });
            throw err;
          });
        const body = await interpret(res, what, c);
        if (body.msg_cd !== undefined && TOKEN_ERRORS.has(String(body.msg_cd))) {
          // Expired or revoked: drop it everywhere and issue a new one on the next attempt.
          await forget(tok);
          throw new RetryableError('kis_token_expired', `${what}: token expired (${String(body.msg_cd)})`, { retryAfterMs: 0 });
        }
        if (body.rt_cd !== '0') throw new PermanentError('kis_rejected', `${what}: KIS rejected the request (${String(body.msg_cd)} ${String(body.msg1)})`);
        return { candles: parseKisCandles(body, symbol, tf, what), rowCount: (body.output2 as unknown[]).length };
      },
      { ...retry, ...(signal ? { signal } : {}) },
    );
  }

  async function interpret(res: HttpResponse, what: string, c: CallOptions): Promise<Record<string, unknown>> {
    const body = parseJson(res, what);
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new RetryableError('malformed_body', `${what}: response is not an object`);
    const b = body as Record<string, unknown>;
    if (b.msg_cd === 'EGW00201') {
      // The app key's budget was overdrawn (by someone outside it): every process sharing it waits.
      await budget.pause(1000, 'EGW00201', `KIS answered EGW00201 too many requests per second (${what})`);
      c.onWait?.('KIS answered EGW00201: every process paused 1000 ms');
      throw new RetryableError('kis_rate', `${what}: KIS says too many requests per second (EGW00201)`, { rateLimited: true, retryAfterMs: 1000 });
    }
    if (res.status >= 500 && !TOKEN_ERRORS.has(String(b.msg_cd))) throw new RetryableError('kis_5xx', `${what}: KIS answered ${res.status} ${String(b.msg_cd ?? '')}`);
    return b;
  }

  return {
    token,
    async periodCandles(symbol, tf, from, end, o = {}) {
      if (!(KIS_TIMEFRAMES as readonly string[]).includes(tf)) {
        throw new PermanentError('unsupported_timeframe', `KIS collection supports ${KIS_TIMEFRAMES.join(', ')}; ${tf} is not available`);
      }
      const out: Candle[] = [];
      let cursor = new Date(end.getTime() - DAY_MS);
      let pages = 0;
      while (cursor >= from) {
        const { candles: rows, rowCount } = await page(symbol, tf, ymd(from), ymd(cursor), o);
        pages++;
        for (const c of rows) if (c.time >= from && c.time < end) out.push(c);
        // A short page is the last one; rows skipped for lack of trades still count towards it.
        if (rowCount < KIS_PAGE_SIZE || rows.length === 0) break;
        const oldest = rows[0]!.time;
        cursor = new Date(oldest.getTime() - DAY_MS);
        o.onPage?.(cursor, out.length);
      }
      return { candles: out, requests: pages };
    },
    requestCount: () => requests,
  };
}

function ymd(d: Date): string {
  return d.toISOString().slice(0, 10).replaceAll('-', '');
}

const NUMERIC = /^-?\d+(\.\d+)?$/;

/**
 * Validates output2 (newest first, every value a string) and returns candles
 * oldest first. A candle is keyed by its trading date at 00:00 UTC, floored to
 * the week (Monday) or month for W and M. Rows without trades are skipped.
 */
export function parseKisCandles(body: Record<string, unknown>, symbol: string, tf: Timeframe, what: string): Candle[] {
  const rows = body.output2;
  if (!Array.isArray(rows)) throw new RetryableError('malformed_body', `${what}: output2 is not an array`);
  const out1 = body.output1 as Record<string, unknown> | undefined;
  const nonEmpty = rows.filter((r) => r && typeof r === 'object' && Object.keys(r as object).length > 0) as Record<string, unknown>[];
  if (nonEmpty.length === 0 && (!out1 || out1.stck_prpr === '0' || out1.stck_prpr === '')) {
    throw new PermanentError('unknown_symbol', `${what}: KIS has no such symbol ${symbol}`);
  }
  const out: Candle[] = [];
  for (const [i, r] of nonEmpty.entries()) {
    const fields = ['stck_oprc', 'stck_hgpr', 'stck_lwpr', 'stck_clpr', 'acml_vol', 'acml_tr_pbmn'] as const;
    for (const f of fields) {
      if (typeof r[f] !== 'string' || !NUMERIC.test(r[f] as string)) throw new RetryableError('malformed_body', `${what}: row ${i} field ${f} is ${JSON.stringify(r[f])}`);
    }
    const date = r.stck_bsop_date;
    if (typeof date !== 'string' || !/^\d{8}$/.test(date)) throw new RetryableError('malformed_body', `${what}: row ${i} has stck_bsop_date ${JSON.stringify(date)}`);
    const [open, high, low, close, volume, quoteVolume] = fields.map((f) => Number(r[f]));
    if (volume === 0 && open === 0) continue;
    const day = new Date(`${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T00:00:00Z`);
    if (Number.isNaN(day.getTime())) throw new RetryableError('malformed_body', `${what}: row ${i} has an impossible date ${date}`);
    out.push({ time: floorToTimeframe(tf, day), open: open!, high: high!, low: low!, close: close!, volume: volume!, quoteVolume: quoteVolume! });
  }
  out.reverse();
  return out;
}
