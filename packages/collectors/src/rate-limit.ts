/**
 * Request budgets as the exchanges state them: at most `limit` requests in any
 * window of `windowMs` (Upbit: 10 per second per group; KIS: 18 per second per
 * app key on a real account, 1 on a mock one).
 *
 * The maths is pure (`now` in ms is an argument) and kept in a SlidingWindow; a
 * RateLimiter wraps it with a clock and a FIFO of waiters. A sliding window is
 * the strictest reading of "N per second", so a server counting fixed windows
 * or a sliding one never sees more than it allows.
 *
 * The server counts a request when it arrives, which we cannot see: it lies
 * between sending and receiving the answer. So a request holds its slot while in
 * flight and is dated by the moment its answer came back (`settle`). The next
 * request in that slot leaves a window later, and therefore arrives more than a
 * window after the first one did, whatever the network latency.
 */
export interface WindowOptions {
  limit: number;
  windowMs: number;
  marginMs?: number;
}

export type Acquired = { granted: true; ticket: number } | { granted: false; waitMs: number | undefined };

export class SlidingWindow {
  readonly limit: number;
  readonly windowMs: number;
  readonly marginMs: number;
  /** Slot times: settled requests and foreign use by time, in-flight ones as Infinity. */
  private slots = new Map<number, number>();
  private nextTicket = 1;
  private blockedUntil = 0;

  constructor(opts: WindowOptions) {
    if (!(opts.limit >= 1) || !(opts.windowMs > 0)) throw new RangeError('rate limit needs limit >= 1 and windowMs > 0');
    this.limit = Math.floor(opts.limit);
    this.windowMs = opts.windowMs;
    this.marginMs = opts.marginMs ?? 2;
  }

  private live(now: number): number[] {
    const horizon = now - this.windowMs - this.marginMs;
    const times: number[] = [];
    for (const [ticket, at] of this.slots) {
      if (at <= horizon) this.slots.delete(ticket);
      else times.push(at);
    }
    return times;
  }

  /**
   * Takes a slot if one is free at `now`. Otherwise says how long to wait:
   * `undefined` when every slot is held by a request still in flight (wait for
   * one to settle).
   */
  tryAcquire(now: number): Acquired {
    if (now < this.blockedUntil) return { granted: false, waitMs: this.blockedUntil - now };
    const times = this.live(now);
    if (times.length < this.limit) {
      const ticket = this.nextTicket++;
      this.slots.set(ticket, Infinity);
      return { granted: true, ticket };
    }
    // The slot that frees first is the oldest settled one; in-flight slots free only on settle.
    times.sort((a, b) => a - b);
    const oldest = times[times.length - this.limit]!;
    return { granted: false, waitMs: Number.isFinite(oldest) ? oldest + this.windowMs + this.marginMs - now : undefined };
  }

  /** The request of `ticket` got its answer (or failed) at `now`. */
  settle(ticket: number, now: number): void {
    if (this.slots.has(ticket)) this.slots.set(ticket, now);
  }

  /** Requests that may still start at `now`. */
  remaining(now: number): number {
    return Math.max(0, this.limit - this.live(now).length);
  }

  /**
   * The server's own count (Upbit `Remaining-Req: ... sec=N`). When it has fewer
   * left than we think, someone else (another process on the same IP or key)
   * spends the budget: book the difference as used now.
   */
  observeRemaining(serverRemaining: number, now: number): void {
    const missing = this.remaining(now) - Math.max(0, serverRemaining);
    for (let i = 0; i < missing; i++) this.slots.set(this.nextTicket++, now);
  }

  /** The server said "too many" (429, EGW00201): nothing starts before now + pauseMs. */
  pause(now: number, pauseMs: number): void {
    this.blockedUntil = Math.max(this.blockedUntil, now + pauseMs);
  }
}

export class RateLimiter {
  readonly window: SlidingWindow;
  private readonly clock: () => number;
  private queue: Promise<unknown> = Promise.resolve();
  private settled: (() => void)[] = [];

  constructor(opts: WindowOptions & { clock?: () => number }) {
    this.window = new SlidingWindow(opts);
    this.clock = opts.clock ?? Date.now;
  }

  /**
   * Resolves when a request may start, with the function to call once its answer
   * has arrived (or it failed). Callers are served in arrival order.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    const turn = this.queue.then(() => this.waitForSlot(signal));
    // A waiter that aborts must not stall the ones behind it.
    this.queue = turn.catch(() => {});
    return turn;
  }

  observeRemaining(serverRemaining: number): void {
    this.window.observeRemaining(serverRemaining, this.clock());
  }

  pause(pauseMs: number): void {
    this.window.pause(this.clock(), pauseMs);
  }

  private async waitForSlot(signal?: AbortSignal): Promise<() => void> {
    for (;;) {
      signal?.throwIfAborted();
      const r = this.window.tryAcquire(this.clock());
      if (r.granted) {
        let done = false;
        return () => {
          if (done) return;
          done = true;
          this.window.settle(r.ticket, this.clock());
          for (const wake of this.settled.splice(0)) wake();
        };
      }
      if (r.waitMs !== undefined) await sleep(r.waitMs, signal);
      else await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal!.reason);
        signal?.addEventListener('abort', onAbort, { once: true });
        this.settled.push(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    }
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * One limiter per budget per process, whoever asks: every collection running in
 * this process against the same host and group (or app key) shares it.
 */
const registry = new Map<string, RateLimiter>();

export function sharedLimiter(key: string, opts: WindowOptions): RateLimiter {
  const fullKey = `${key}|${opts.limit}/${opts.windowMs}`;
  let limiter = registry.get(fullKey);
  if (!limiter) {
    limiter = new RateLimiter(opts);
    registry.set(fullKey, limiter);
  }
  return limiter;
}
