import { request, type Dispatcher } from 'undici';
import { AppError, backoffMs, type Logger } from '@wombat/core/platform';
import { RateLimitedError, RetryableError } from './errors.ts';
import { sleep } from './rate-limit.ts';

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export interface HttpRequest {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  timeoutMs: number;
}

/**
 * One HTTP exchange with a deadline. The caller's signal aborts the request in
 * flight; a missed deadline or a broken connection becomes a RetryableError.
 * Any status is returned as is: the exchange clients decide what it means.
 */
export async function httpRequest(url: string, req: HttpRequest): Promise<HttpResponse> {
  req.signal?.throwIfAborted();
  const timeout = AbortSignal.timeout(req.timeoutMs);
  const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
  try {
    const res = await request(url, {
      method: req.method ?? 'GET',
      ...(req.headers ? { headers: req.headers } : {}),
      ...(req.body !== undefined ? { body: req.body } : {}),
      signal,
    } as Dispatcher.RequestOptions);
    // Always consume the body: an unread body holds the connection.
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text };
  } catch (err) {
    if (req.signal?.aborted) throw req.signal.reason;
    if (timeout.aborted) throw new RetryableError('timeout', `no answer within ${req.timeoutMs} ms from ${new URL(url).host}`, { cause: err });
    throw new RetryableError('network', `request to ${new URL(url).host} failed: ${(err as Error).message}`, { cause: err });
  }
}

export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function parseJson(res: HttpResponse, what: string): unknown {
  try {
    return JSON.parse(res.text);
  } catch (err) {
    // Never the body itself: the error becomes a run's error, shown by the api, the dashboard and alerts.
    throw new RetryableError('malformed_body', `${what}: response body is not JSON (status ${res.status}, ${describeBody(header(res, 'content-type') ?? '', res.text)})`, { cause: err });
  }
}

/** What a body was, without any of its content: its media type (if it looks like one) and its length. */
export function describeBody(contentType: string, text: string): string {
  const media = /^\s*([a-z0-9!#$&^_.+-]{1,64}\/[a-z0-9!#$&^_.+-]{1,64})/i.exec(contentType)?.[1]?.toLowerCase();
  return `content type ${media ?? 'not stated'}, ${text.length} characters`;
}

export interface RetryOptions {
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  signal?: AbortSignal;
  log: Logger;
}

/**
 * Runs `fn` until it succeeds, retrying RetryableErrors with exponential backoff
 * and equal jitter (between half the step and the step, never past maxDelayMs),
 * or after the server's own delay when that is longer. Anything else (PermanentError, abort)
 * passes through at once. When the retries run out the last problem is reported
 * with the number of attempts, as RateLimitedError if the server was throttling.
 */
export async function withRetries<T>(what: string, fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!(err instanceof RetryableError)) throw err;
      if (attempt > opts.retries) {
        const message = `${what} failed after ${attempt} attempts: ${err.message}`;
        if (err.rateLimited) throw new RateLimitedError(message, err.retryAfterMs ?? opts.maxDelayMs, { cause: err });
        throw new AppError('exchange_unavailable', message, { cause: err });
      }
      const delayMs = Math.max(err.retryAfterMs ?? 0, backoffMs(attempt, { baseMs: opts.baseDelayMs, maxMs: opts.maxDelayMs, jitter: 'equal' }));
      opts.log.warn({ code: err.code, attempt, delayMs: Math.round(delayMs), err: err.message }, `${what}: retrying`);
      await sleep(delayMs, opts.signal);
    }
  }
}
