import { createLocalBudgetStore } from '../budget-store.ts';
import { createLimiter } from '../rate-limit.ts';

/**
 * The crawls' one door to the request limiter the exchanges use (bottleneck over
 * a budget store): the rest of the crawl code calls `hostSlot` and nothing else.
 * The crawl's host budgets live in this process (a shop's politeness limit is the
 * crawl's own promise, not an account's budget); moving them to the PostgreSQL
 * store changes this file only.
 *
 * Per host: at most `requestsPerSecond` (a fraction means one request every
 * 1/r seconds) and at most `concurrency` requests in flight.
 */
export interface HostBudget {
  requestsPerSecond: number;
  concurrency: number;
}

const limiter = createLimiter({ store: createLocalBudgetStore(), leaseSize: 1 });
/** Longest a page request may hold its place (the crawl's own request deadline is shorter). */
const HOLD_MS = 120_000;

const inFlight = new Map<string, { running: number; waiting: (() => void)[] }>();

/** Waits for the host's turn; resolves with the function to call once the answer is in (or the request failed). */
export async function hostSlot(host: string, budget: HostBudget, signal?: AbortSignal): Promise<() => void> {
  const gate = await concurrencySlot(`${host}|${budget.concurrency}`, budget.concurrency, signal);
  try {
    const window = budget.requestsPerSecond >= 1 ? { limit: Math.floor(budget.requestsPerSecond), windowMs: 1000 } : { limit: 1, windowMs: Math.ceil(1000 / budget.requestsPerSecond) };
    const hostBudget = limiter.budget(`crawl:${host}:${window.limit}/${window.windowMs}`, { limits: [window], holdMs: HOLD_MS });
    // The limiter runs a function once the budget allows it and counts the request from its end:
    // here that function lasts until the caller's answer is in.
    let answered!: () => void;
    const held = new Promise<void>((resolve) => (answered = resolve));
    let admitted!: () => void;
    const admittedNow = new Promise<void>((resolve) => (admitted = resolve));
    const done = hostBudget.schedule(
      async () => {
        admitted();
        await held;
      },
      signal ? { signal } : {},
    );
    done.catch(() => {}); // a failure before admission is thrown by the race below
    await Promise.race([admittedNow, done]);
    return () => {
      answered();
      gate();
    };
  } catch (err) {
    gate();
    throw err;
  }
}

async function concurrencySlot(key: string, limit: number, signal?: AbortSignal): Promise<() => void> {
  let s = inFlight.get(key);
  if (!s) {
    s = { running: 0, waiting: [] };
    inFlight.set(key, s);
  }
  const state = s;
  while (state.running >= limit) {
    signal?.throwIfAborted();
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        state.waiting.splice(state.waiting.indexOf(wake), 1);
        reject(signal!.reason);
      };
      state.waiting.push(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
  state.running++;
  let done = false;
  return () => {
    if (done) return;
    done = true;
    state.running--;
    state.waiting.shift()?.();
  };
}
