import { backoffMs, type Logger, type Sql } from '@wombat/core/platform';
import { type CompletedAttempt, settleCompletedAttempts } from '@wombat/core/runs';

/**
 * Completions whose settlement in pg-boss may have been lost, settled again until they land.
 *
 * A fetch loop's batch ends with pg-boss settling its jobs. When the database goes away between
 * the run history's write (the run reads completed) and that settlement, pg-boss reports the
 * failure as an error of the loop and leaves the jobs active; once the database returns, pg-boss
 * would fail them at their expiry (or retry them) although their handlers completed. The worker
 * keeps each loop's last batch of completions until the loop's next batch begins; an error of
 * the loop in between puts them here, and they are settled by core's fenced statement
 * (settleCompletedAttempts) with backoff until the database answers. An error that was not a lost
 * settlement (a failed fetch after a good one) costs one statement that changes nothing.
 */
export interface LostSettles {
  /** A loop's next batch begins: its previous batch was settled. */
  batchStarted(loopId: string): void;
  /** A loop's handler returned; these completions are settled by pg-boss next. */
  batchEnded(loopId: string, completions: CompletedAttempt[]): void;
  /** pg-boss reported an error of this loop: its last batch's settlement may be lost. */
  loopFailed(loopId: string): void;
  /** Completions waiting to be settled again. */
  readonly pending: number;
  /** One last try within the deadline; what is left is the reconciler's. */
  close(deadlineMs?: number): Promise<void>;
}

export interface LostSettlesOptions {
  sql: Sql;
  log: Logger;
  /** Completions kept at most; beyond it the oldest go (the reconciler settles their jobs). */
  maxPending?: number;
  /** How long a completion is retried before it is left to the reconciler. */
  maxAgeMs?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** Attempts settled per statement. */
const CHUNK = 1_000;

export function createLostSettles(opts: LostSettlesOptions): LostSettles {
  const log = opts.log.child({ component: 'lost-settles' });
  const maxPending = opts.maxPending ?? 100_000;
  const maxAgeMs = opts.maxAgeMs ?? 10 * 60_000;
  const retryMinMs = opts.retryMinMs ?? 250;
  const retryMaxMs = opts.retryMaxMs ?? 5_000;
  const lastBatch = new Map<string, CompletedAttempt[]>();
  const pending = new Map<string, CompletedAttempt & { since: number }>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let failures = 0;
  let closed = false;

  function schedule(delayMs: number): void {
    if (closed || timer || running || pending.size === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      running = attempt().finally(() => {
        running = undefined;
        schedule(backoffMs(Math.max(failures, 1), { baseMs: retryMinMs, maxMs: retryMaxMs, jitter: 'none' }));
      });
    }, delayMs);
  }

  async function attempt(): Promise<void> {
    const now = performance.now();
    for (const [id, p] of pending) {
      if (now - p.since <= maxAgeMs) continue;
      pending.delete(id);
      log.error({ runId: id, job: p.job, attempt: p.attempts }, 'gave up settling a completed job pg-boss did not settle (the reconciler settles it)');
    }
    const all = [...pending.values()];
    try {
      let settled = 0;
      for (let i = 0; i < all.length; i += CHUNK) {
        const chunk = all.slice(i, i + CHUNK);
        const out = await settleCompletedAttempts(opts.sql, chunk.map(({ id, job, attempts }) => ({ id, job, attempts })));
        const still = new Set(out.pending);
        for (const c of chunk) if (!still.has(c.id)) pending.delete(c.id);
        settled += out.settled.length;
      }
      if (settled > 0 || failures > 0) log.info({ settled, checked: all.length, waiting: pending.size, failures }, 'completed jobs whose settlement pg-boss lost are settled');
      failures = 0;
    } catch (err) {
      failures++;
      if (failures === 1 || failures % 10 === 0) log.warn({ err, waiting: pending.size, failures }, 'could not settle completed jobs yet; will retry');
    }
  }

  return {
    batchStarted(loopId) {
      lastBatch.delete(loopId);
    },
    batchEnded(loopId, completions) {
      if (completions.length > 0) lastBatch.set(loopId, completions);
      else lastBatch.delete(loopId);
    },
    loopFailed(loopId) {
      const batch = lastBatch.get(loopId);
      if (!batch) return;
      lastBatch.delete(loopId);
      const since = performance.now();
      for (const c of batch) pending.set(c.id, { ...c, since });
      for (const id of pending.keys()) {
        if (pending.size <= maxPending) break;
        pending.delete(id);
      }
      schedule(retryMinMs);
    },
    get pending() {
      return pending.size;
    },
    async close(deadlineMs = 3_000) {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await running;
      if (pending.size === 0) return;
      const until = performance.now() + deadlineMs;
      while (pending.size > 0 && performance.now() < until) {
        await attempt();
        if (pending.size > 0) await new Promise((r) => setTimeout(r, Math.min(retryMinMs, Math.max(0, until - performance.now()))));
      }
      if (pending.size > 0) log.error({ waiting: pending.size }, 'completed jobs not settled before the worker stopped (the reconciler settles them)');
    },
  };
}
