import { sharedLimiter } from '../rate-limit.ts';

/**
 * The crawls' one door to the request limiter the exchanges use: the rest of the
 * crawl code calls `hostSlot` and nothing else, so switching the limiter (for one
 * whose budgets are shared through PostgreSQL) changes this file only.
 *
 * Per host: at most `requestsPerSecond` (a fraction means one request every
 * 1/r seconds) and at most `concurrency` requests in flight.
 */
export interface HostBudget {
  requestsPerSecond: number;
  concurrency: number;
}

const inFlight = new Map<string, { running: number; waiting: (() => void)[] }>();

/** Waits for the host's turn; resolves with the function to call once the answer is in (or the request failed). */
export async function hostSlot(host: string, budget: HostBudget, signal?: AbortSignal): Promise<() => void> {
  const gate = await concurrencySlot(`${host}|${budget.concurrency}`, budget.concurrency, signal);
  try {
    const window = budget.requestsPerSecond >= 1 ? { limit: Math.floor(budget.requestsPerSecond), windowMs: 1000 } : { limit: 1, windowMs: Math.ceil(1000 / budget.requestsPerSecond) };
    const release = await sharedLimiter(`crawl|${host}`, window).acquire(signal);
    return () => {
      release();
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
