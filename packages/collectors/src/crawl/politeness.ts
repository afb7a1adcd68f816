import type { Kysely } from 'kysely';
import { createLocalBudgetStore, createPgBudgetStore, type BudgetStore } from '../budget-store.ts';
import { createLimiter, type Limiter } from '../rate-limit.ts';

/**
 * The crawls' one door to the request limiter the exchanges use (bottleneck over
 * a budget store): the rest of the crawl code calls `hostSlot` and nothing else.
 *
 * Per host: at most `requestsPerSecond` (a fraction means one request every
 * 1/r seconds), counted across every process that crawls with the same database
 * (the exchanges' budget store, wombat.exchange_budgets), so two workers or a
 * worker and a script crawling one shop at once stay within its limit together;
 * without a database, within this process. At most `concurrency` requests in
 * flight per host and process.
 */
export interface HostBudget {
  requestsPerSecond: number;
  concurrency: number;
}

/**
 * A limiter keeps one queue per budget name, its spec fixed by the first caller; a host
 * budget is named `crawl:<host>|<rate>` so each rate gets its queue, and this store
 * drops the `|<rate>` so every rate of a host counts in one shared log.
 */
function perHost(store: BudgetStore): BudgetStore {
  const key = (name: string) => name.replace(/\|[^|]*$/, '');
  return {
    kind: store.kind,
    take: (name, spec, n) => store.take(key(name), spec, n),
    settle: (name, stamp, count, o) => store.settle(key(name), stamp, count, o),
    block: (name, kind, ms, code, message) => store.block(key(name), kind, ms, code, message),
  };
}

const localLimiter = createLimiter({ store: perHost(createLocalBudgetStore()), leaseSize: 1 });
/** One shared limiter per database handle: every crawl of a process on it draws from the same budgets. */
const sharedLimiters = new WeakMap<object, Limiter>();

function limiterFor(db: Kysely<any> | undefined): Limiter { // eslint-disable-line @typescript-eslint/no-explicit-any
  if (!db) return localLimiter;
  let l = sharedLimiters.get(db);
  if (!l) sharedLimiters.set(db, (l = createLimiter({ store: perHost(createPgBudgetStore(db)), leaseSize: 1 })));
  return l;
}
/**
 * Longest spacing between two requests to a host: a Crawl-delay is robots.txt's to
 * choose (hostile input), and a day-long one would overflow the budget's int window.
 */
export const MAX_SPACING_MS = 60_000;
/** Kept in every host budget so the shared log keeps MAX_SPACING_MS of history: at most 50 × 60 entries. */
const HISTORY = { limit: 1_000_000_000, windowMs: MAX_SPACING_MS };
/** Longest a page request may hold its place (the crawl's own request deadline is shorter). */
const HOLD_MS = 120_000;

const inFlight = new Map<string, { running: number; waiting: (() => void)[] }>();

/** Waits for the host's turn; resolves with the function to call once the answer is in (or the request failed). */
export async function hostSlot(host: string, budget: HostBudget, signal?: AbortSignal, db?: Kysely<any>): Promise<() => void> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const gate = await concurrencySlot(`${host}|${budget.concurrency}`, budget.concurrency, signal);
  try {
    const window = budget.requestsPerSecond >= 1 ? { limit: Math.floor(budget.requestsPerSecond), windowMs: 1000 } : { limit: 1, windowMs: Math.min(MAX_SPACING_MS, Math.ceil(1000 / budget.requestsPerSecond)) };
    // One budget per host, whatever this caller's rate: processes configured with different
    // rates, and robots.txt beside pages slowed by Crawl-delay, count the same requests. Each
    // caller holds the shared log to its own limit; the history limit (never binding) keeps every
    // caller from pruning the log shorter than the slowest one needs.
    const hostBudget = limiterFor(db).budget(`crawl:${host}|${window.limit}/${window.windowMs}`, { limits: [window, HISTORY], holdMs: HOLD_MS });
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
