import Bottleneck from 'bottleneck';
import { PermanentError, type Logger } from '@wombat/core/platform';
import type { BudgetSpec } from './budget-math.ts';
import type { BudgetStore } from './budget-store.ts';

/**
 * Named request budgets (`upbit:api.upbit.com:candles`, `kis:<host>:<key>`,
 * `host:example.com`) drawn from a BudgetStore, so every process that uses the
 * same store (PostgreSQL) shares one budget and its bans.
 *
 * Inside a process, bottleneck queues the calls of a budget: priorities (a daily
 * collection goes ahead of a large backfill) and how many may wait for the shared
 * budget at once. Those waiting are served in that order by one loop per budget
 * that asks the store for places, up to `leaseSize` at a time, and sleeps as long
 * as the store says.
 */
export type Priority = 'high' | 'normal' | 'low';
const PRIORITY: Record<Priority, number> = { high: 2, normal: 5, low: 8 };

export interface ScheduleOptions {
  priority?: Priority;
  signal?: AbortSignal;
  /** Told when the budget is paused (a 429, an EGW00201) for longer than a moment, with why and until when. */
  onWait?: (message: string) => void;
}

export interface Budget {
  readonly name: string;
  readonly spec: BudgetSpec;
  /** Runs `fn` once the budget allows one more request; its answer (or failure) settles the place. */
  schedule<T>(fn: () => Promise<T>, opts?: ScheduleOptions): Promise<T>;
  /** Nothing calls this budget, in any process sharing the store, for `ms`: calls fail with BudgetBannedError. */
  ban(ms: number, code: string, message: string): Promise<void>;
  /** Calls of this budget, in every process sharing the store, wait `ms` before going out. */
  pause(ms: number, code: string, message: string): Promise<void>;
}

export interface Limiter {
  readonly store: BudgetStore;
  /** The budget called `name`: one per name in this process, whoever asks. */
  budget(name: string, spec: BudgetSpec): Budget;
  /** Stops taking calls and waits for those running. */
  stop(): Promise<void>;
}

export interface LimiterOptions {
  store: BudgetStore;
  log?: Logger;
  /** Places asked from the store in one statement when several calls wait (default 3; 1: one per call). */
  leaseSize?: number;
  /** Calls of one budget waiting for the shared budget at once in this process (default 3); the rest queue by priority. */
  maxConcurrent?: number;
}

/** A budget is banned (an Upbit 418 recorded by this or another process): no call until `untilMs`. */
export class BudgetBannedError extends PermanentError {
  readonly untilMs: number;
  readonly budget: string;
  constructor(budget: string, code: string, message: string, untilMs: number) {
    super(code, `${message || `budget ${budget} is banned`} (until ${new Date(untilMs).toISOString()})`);
    this.name = 'BudgetBannedError';
    this.budget = budget;
    this.untilMs = untilMs;
  }
}

interface Waiter {
  resolve(stamp: number): void;
  reject(err: unknown): void;
  signal: AbortSignal | undefined;
  onWait: ((message: string) => void) | undefined;
  done: boolean;
}

/** Store failures (a database restart) are retried this many times before the waiting calls fail. */
const STORE_RETRIES = 4;

export function createLimiter(opts: LimiterOptions): Limiter {
  const budgets = new Map<string, Budget & { stop(): Promise<void> }>();
  let stopped = false;
  return {
    store: opts.store,
    budget(name, spec) {
      if (stopped) throw new Error('the limiter is stopped');
      let b = budgets.get(name);
      if (!b) budgets.set(name, (b = processBudget(name, spec, opts)));
      return b;
    },
    async stop() {
      stopped = true;
      await Promise.all([...budgets.values()].map((b) => b.stop()));
    },
  };
}

function processBudget(name: string, spec: BudgetSpec, opts: LimiterOptions): Budget & { stop(): Promise<void> } {
  const store = opts.store;
  // Measured (bench/shared-budget.ts): leases of 3 use the budget as well as single places
  // (about 93% of it either way) with about 17% fewer statements, so they are the default.
  const leaseSize = Math.max(1, opts.leaseSize ?? 3);
  const queue = new Bottleneck({ maxConcurrent: opts.maxConcurrent ?? Math.max(3, leaseSize) });
  const waiters: Waiter[] = [];
  let pumping: Promise<void> | undefined;
  const settles = new Map<number, number>();
  let flushing: Promise<void> | undefined;
  const settling = new Set<Promise<void>>();

  function finish(w: Waiter): boolean {
    if (w.done) return false;
    w.done = true;
    const i = waiters.indexOf(w);
    if (i >= 0) waiters.splice(i, 1);
    return true;
  }

  async function takeWithRetries(n: number) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await store.take(name, spec, n);
      } catch (err) {
        if (attempt > STORE_RETRIES) throw err;
        opts.log?.warn({ budget: name, attempt, err: (err as Error).message }, 'budget store unavailable: retrying');
        await sleep(100 * 4 ** (attempt - 1));
      }
    }
  }

  async function pump(): Promise<void> {
    while (waiters.length > 0) {
      let r;
      try {
        r = await takeWithRetries(Math.min(leaseSize, waiters.length));
      } catch (err) {
        for (const w of [...waiters]) if (finish(w)) w.reject(err);
        return;
      }
      if (r.granted > 0) {
        let unused = 0;
        for (let i = 0; i < r.granted; i++) {
          const w = waiters[0];
          if (w && finish(w)) w.resolve(r.stamp);
          else unused++;
        }
        if (unused > 0) await store.settle(name, r.stamp, unused, { unused: true }).catch(() => {});
        continue;
      }
      if ('ban' in r && r.ban) {
        const err = new BudgetBannedError(name, r.ban.code, r.ban.message, r.ban.untilMs);
        for (const w of [...waiters]) if (finish(w)) w.reject(err);
        continue;
      }
      if ('pause' in r && r.pause && r.waitMs >= 200) {
        const message = `${name} paused until ${new Date(r.pause.untilMs).toISOString()}: ${r.pause.message || r.pause.code}`;
        for (const w of waiters) w.onWait?.(message);
      }
      await sleep(r.waitMs);
    }
  }

  function acquire(signal: AbortSignal | undefined, onWait: ((m: string) => void) | undefined): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const w: Waiter = { resolve, reject, signal, onWait, done: false };
      const onAbort = () => {
        if (finish(w)) reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      w.resolve = (stamp) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(stamp);
      };
      w.reject = (err) => {
        signal?.removeEventListener('abort', onAbort);
        reject(err);
      };
      waiters.push(w);
      startPump();
    });
  }

  function startPump(): void {
    if (pumping) return;
    pumping = pump().finally(() => {
      pumping = undefined;
      // A waiter may have arrived between the loop's last check and now.
      if (waiters.length > 0) startPump();
    });
  }

  function settle(stamp: number): void {
    settles.set(stamp, (settles.get(stamp) ?? 0) + 1);
    // Answers that come back together settle in one statement.
    flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      const batch = [...settles];
      settles.clear();
      flushing = undefined;
      for (const [s, count] of batch) {
        const p = store
          .settle(name, s, count)
          .catch((err: unknown) => opts.log?.warn({ budget: name, err: (err as Error).message }, 'could not settle a request; its place frees after the hold'))
          .finally(() => settling.delete(p));
        settling.add(p);
      }
    });
  }

  return {
    name,
    spec,
    schedule(fn, o = {}) {
      o.signal?.throwIfAborted();
      const run = queue.schedule({ priority: PRIORITY[o.priority ?? 'normal'] }, async () => {
        const stamp = await acquire(o.signal, o.onWait);
        try {
          return await fn();
        } finally {
          settle(stamp);
        }
      });
      if (!o.signal) return run;
      // A call cancelled while queued leaves at once; its queued job then finds the signal aborted.
      const signal = o.signal;
      return new Promise((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        run.then(
          (v) => {
            signal.removeEventListener('abort', onAbort);
            resolve(v);
          },
          (err: unknown) => {
            signal.removeEventListener('abort', onAbort);
            reject(err);
          },
        );
      });
    },
    ban: (ms, code, message) => store.block(name, 'ban', ms, code, message),
    pause: (ms, code, message) => store.block(name, 'pause', ms, code, message),
    async stop() {
      await queue.stop({ dropWaitingJobs: false });
      await pumping;
      await flushing;
      await Promise.all(settling);
    },
  };
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
