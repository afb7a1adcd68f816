import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { PermanentError, type Logger, type Timeframe } from '@wombat/core';
import { floorToTimeframe, type Candle } from './candle.ts';
import { RetryableError } from './errors.ts';
import { httpRequest, parseJson, withRetries, type HttpResponse } from './http.ts';
import type { CollectorDb } from './pg-store.ts';
import { sharedLimiter } from './rate-limit.ts';

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
  periodCandles(symbol: string, tf: Timeframe, from: Date, end: Date, opts?: { signal?: AbortSignal; onPage?: (cursor: Date, fetched: number) => void }): Promise<{ candles: Candle[]; requests: number }>;
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
  const limiter = sharedLimiter(`kis|${baseUrl}|${opts.appKey}`, { limit, windowMs: 1000 });
  const retry = { retries: opts.retries ?? 5, baseDelayMs: opts.retryBaseDelayMs ?? 250, maxDelayMs: 10_000, log: opts.log };
  let requests = 0;

  const fresh = (expiresAt: number) => expiresAt - TOKEN_MARGIN_MS > Date.now();

  async function issue(signal?: AbortSignal): Promise<{ token: string; issuedAt: Date; expiresAt: Date }> {
    return withRetries(
      'KIS token',
      async () => {
        requests++;
        const res = await httpRequest(`${baseUrl}/oauth2/tokenP`, {
          method: 'POST',
          headers: { 'content-type': 'application/json; charset=utf-8' },
          body: JSON.stringify({ grant_type: 'client_credentials', appkey: opts.appKey, appsecret: opts.appSecret }),
          timeoutMs: opts.timeoutMs ?? 10_000,
          ...(signal ? { signal } : {}),
        });
        const body = parseJson(res, 'KIS token') as Record<string, unknown>;
        if (body.error_code === 'EGW00133') {
          throw new RetryableError('kis_token_rate', 'KIS token: issued too recently (EGW00133)', { rateLimited: true, retryAfterMs: opts.tokenRetryDelayMs ?? 65_000 });
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

  async function obtain(signal?: AbortSignal): Promise<{ token: string; expiresAt: number }> {
    const db = opts.db;
    if (!db) {
      const t = await issue(signal);
      return { token: t.token, expiresAt: t.expiresAt.getTime() };
    }
    // One issuer per app key across processes: the others wait on the lock and then read its token.
    return db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext(${`wombat.kis_token.${keyHash}`}))`.execute(trx);
      const row = await trx.selectFrom('wombat.kis_tokens').select(['token', 'expires_at']).where('key_hash', '=', keyHash).executeTakeFirst();
      if (row && fresh(new Date(row.expires_at).getTime())) return { token: row.token, expiresAt: new Date(row.expires_at).getTime() };
      const issued = await issue(signal);
      await trx
        .insertInto('wombat.kis_tokens')
        .values({ key_hash: keyHash, token: issued.token, issued_at: issued.issuedAt, expires_at: issued.expiresAt, updated_at: new Date() })
        .onConflict((oc) => oc.column('key_hash').doUpdateSet({ token: issued.token, issued_at: issued.issuedAt, expires_at: issued.expiresAt, updated_at: new Date() }))
        .execute();
      opts.log.info({ expiresAt: issued.expiresAt.toISOString() }, 'KIS token issued');
      return { token: issued.token, expiresAt: issued.expiresAt.getTime() };
    });
  }

  async function forget(stale: string): Promise<void> {
    if (processTokens.get(keyHash)?.token === stale) processTokens.delete(keyHash);
    await opts.db?.deleteFrom('wombat.kis_tokens').where('key_hash', '=', keyHash).where('token', '=', stale).execute();
  }

  async function page(symbol: string, tf: Timeframe, date1: string, date2: string, signal?: AbortSignal): Promise<{ candles: Candle[]; rowCount: number }> {
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
        const done = await limiter.acquire(signal);
        requests++;
        const res = await httpRequest(url, {
          headers: {
            'content-type': 'application/json; charset=utf-8',
            authorization: `Bearer ${tok}`,
            appkey: opts.appKey,
            appsecret: opts.appSecret,
            tr_id: 'FHKST03010100',
            custtype: 'P',
          },
          timeoutMs: opts.timeoutMs ?? 10_000,
          ...(signal ? { signal } : {}),
        }).finally(done);
        const body = interpret(res, what);
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

  function interpret(res: HttpResponse, what: string): Record<string, unknown> {
    const body = parseJson(res, what);
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new RetryableError('malformed_body', `${what}: response is not an object`);
    const b = body as Record<string, unknown>;
    if (b.msg_cd === 'EGW00201') {
      limiter.pause(1000);
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
        const { candles: rows, rowCount } = await page(symbol, tf, ymd(from), ymd(cursor), o.signal);
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
