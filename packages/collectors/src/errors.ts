import { AppError } from '@wombat/core/platform';

/** The exchange kept answering "too many requests" after every retry; try again later. */
export class RateLimitedError extends AppError {
  readonly retryAfterMs: number;

  constructor(message: string, retryAfterMs: number, options: { cause?: unknown } = {}) {
    super('rate_limited', message, options);
    this.name = 'RateLimitedError';
    this.retryAfterMs = retryAfterMs;
  }
}

/** A failure worth another attempt inside the client (5xx, timeout, malformed body, 429). */
export class RetryableError extends AppError {
  readonly retryAfterMs: number | undefined;
  readonly rateLimited: boolean;

  constructor(code: string, message: string, opts: { retryAfterMs?: number; rateLimited?: boolean; cause?: unknown } = {}) {
    super(code, message, { cause: opts.cause });
    this.name = 'RetryableError';
    this.retryAfterMs = opts.retryAfterMs;
    this.rateLimited = opts.rateLimited ?? false;
  }
}
