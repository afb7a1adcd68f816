import { backoffMs, type Logger, type Sql } from '@wombat/core/platform';
import { applyAttemptUpdates, type AttemptUpdate } from '@wombat/core/runs';

/** One change to a run's row, from one attempt (the core lifecycle's start/progress/retry-pending/finish). */
export type RunUpdate = AttemptUpdate;

/**
 * What one flush found: the runs whose 'running' write it skipped because the api had cancelled
 * them or an earlier attempt had completed them, and the runs whose write it refused because
 * their attempt was superseded.
 */
export interface FlushOutcome {
  cancelled: ReadonlySet<string>;
  superseded: ReadonlySet<string>;
  /** Runs whose 'running' write it refused because an earlier attempt had completed them. */
  finished: ReadonlySet<string>;
}

export interface HistoryWriter {
  /**
   * Buffers a change; the promise resolves once it is in Postgres, with what its flush found. A
   * failed write is retried until it lands, so the promise may wait as long as Postgres is away;
   * it rejects only when the writer is closed. Callers may ignore it.
   */
  write(update: RunUpdate): Promise<FlushOutcome>;
  /** Writes everything buffered now (one attempt; a failure stays buffered for the retry). */
  flush(): Promise<void>;
  /** Flushes, retrying failures until `deadlineMs` passes, and refuses later writes. */
  close(deadlineMs?: number): Promise<void>;
  /** Runs with a change buffered (and not yet in Postgres). */
  readonly pending: number;
}

/** How long after a failed write the history statement also settles completed jobs. */
const SETTLE_AFTER_FAILURE_MS = 60_000;

interface Pending {
  rows: Map<string, RunUpdate>;
  done: Promise<FlushOutcome>;
  resolve: (outcome: FlushOutcome) => void;
  reject: (err: unknown) => void;
}

export interface HistoryWriterOptions {
  sql: Sql;
  log: Logger;
  flushMs: number;
  batchRows: number;
  /** Most runs kept buffered while Postgres refuses writes; beyond it progress-only changes are dropped first. */
  maxPendingRows?: number;
  /** First retry delay after a failed write; doubles up to retryMaxMs. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

/**
 * Run-history writes, batched: updates for the same run coalesce in memory and every flush is one
 * statement over all buffered rows (core's applyAttemptUpdates), so a batch of 500 trivial jobs
 * costs one statement, not 1000. Flushes run one at a time, which keeps the updates of one run in
 * order.
 *
 * A write that fails (Postgres restarting, a network blip) is never dropped: its rows go back under
 * the changes that arrived since (newer ones win, per run and attempt) and the writer retries with
 * backoff until they land. Memory stays bounded because changes coalesce per run, and at most
 * maxPendingRows runs are kept: past that, progress-only changes go first, then the oldest runs,
 * logged; the engine's reconciler settles such runs from pg-boss's own record of their jobs.
 */
export function createHistoryWriter(opts: HistoryWriterOptions): HistoryWriter {
  const log = opts.log.child({ component: 'history' });
  const maxPending = opts.maxPendingRows ?? 100_000;
  const retryMinMs = opts.retryMinMs ?? 100;
  const retryMaxMs = opts.retryMaxMs ?? 5_000;
  let current: Pending | undefined;
  let timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let running: Promise<boolean> | undefined;
  let closed = false;
  let failures = 0;
  let settleUntilMs = 0;
  let dropped = 0;
  let lastDropLogMs = 0;

  function newPending(): Pending {
    let resolve!: (outcome: FlushOutcome) => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<FlushOutcome>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A caller that does not await a write must not see an unhandled rejection.
    done.catch(() => {});
    return { rows: new Map(), done, resolve, reject };
  }

  function clearTimers(): void {
    if (timer) {
      clearTimeout(timer as NodeJS.Timeout);
      clearImmediate(timer as NodeJS.Immediate);
      timer = undefined;
    }
  }

  /** Group commit: one flush at a time; whatever arrives while a statement runs goes in the next one. Resolves false after a failed write. */
  function run(): Promise<boolean> {
    clearTimers();
    if (!running && current && !retryTimer) {
      running = (async () => {
        try {
          while (current) {
            const batch = current;
            current = undefined;
            if (!(await writeBatch(batch))) return false;
          }
          return true;
        } finally {
          running = undefined;
        }
      })();
    }
    return running ?? Promise.resolve(current === undefined);
  }

  function schedule(): void {
    if (running || timer || retryTimer) return;
    // run() never rejects: a failed write resolves false and schedules its own retry.
    const flush = () => void run();
    timer = opts.flushMs > 0 ? setTimeout(flush, opts.flushMs) : setImmediate(flush);
  }

  async function writeBatch(batch: Pending): Promise<boolean> {
    const rows = [...batch.rows.values()];
    try {
      // Asynchronous commit is safe here: a job's final write is committed before pg-boss settles
      // the job, and pg-boss's synchronous commit flushes the WAL up to and past this one. What a
      // Postgres crash can lose is only a 'running' or progress row of a job that then runs again.
      // Batches written within a minute of a failure hold outcomes whose jobs the worker may not
      // have settled while the database was away: the statement settles completions itself, before
      // their expiry. Otherwise the worker's own settle follows each write.
      const settleCompletedJobs = performance.now() < settleUntilMs;
      const outcome = await applyAttemptUpdates(opts.sql, rows, { synchronousCommit: false, settleCompletedJobs });
      if (failures > 0) log.info({ rows: rows.length, failures }, 'run history written after retries');
      if (outcome.superseded.size > 0) log.warn({ runIds: [...outcome.superseded].slice(0, 20), count: outcome.superseded.size }, 'writes of superseded attempts refused (kept in wombat.superseded_attempts)');
      failures = 0;
      batch.resolve(outcome);
      return true;
    } catch (err) {
      failures++;
      settleUntilMs = performance.now() + SETTLE_AFTER_FAILURE_MS;
      // Put the rows back under what arrived meanwhile; the callers' promises follow the retry.
      const next = current ?? newPending();
      for (const row of rows) {
        const newer = next.rows.get(row.id);
        next.rows.set(row.id, newer ? merge(row, newer) : row);
      }
      next.done.then(batch.resolve, batch.reject);
      current = next;
      bound(next);
      const delay = backoffMs(failures, { baseMs: retryMinMs, maxMs: retryMaxMs, jitter: 'none' });
      if (failures === 1 || failures % 10 === 0) log.error({ err, rows: next.rows.size, failures, retryInMs: delay }, 'run history write failed; will retry');
      retryTimer = setTimeout(() => {
        retryTimer = undefined;
        void run();
      }, delay);
      return false;
    }
  }

  function bound(p: Pending): void {
    if (p.rows.size <= maxPending) return;
    for (const [id, row] of p.rows) {
      if (p.rows.size <= maxPending) break;
      if (row.state === undefined) {
        p.rows.delete(id);
        dropped++;
      }
    }
    for (const id of p.rows.keys()) {
      if (p.rows.size <= maxPending) break;
      p.rows.delete(id);
      dropped++;
    }
    // At most one line every 10 s, with the running total.
    if (Date.now() - lastDropLogMs >= 10_000) {
      lastDropLogMs = Date.now();
      log.error({ dropped, kept: p.rows.size }, 'run history buffer full while Postgres refuses writes; dropped the oldest changes (the reconciler settles those runs from pg-boss)');
    }
  }

  return {
    write(update) {
      if (closed) return Promise.reject(new Error('run history writer is closed'));
      current ??= newPending();
      const prev = current.rows.get(update.id);
      current.rows.set(update.id, prev ? merge(prev, update) : update);
      bound(current);
      const done = current.done;
      if (current.rows.size >= opts.batchRows) void run();
      else schedule();
      return done;
    },
    async flush() {
      await run();
    },
    async close(deadlineMs = 5_000) {
      closed = true;
      const until = Date.now() + deadlineMs;
      while (current || running) {
        if (retryTimer) {
          if (Date.now() >= until) break;
          await new Promise((r) => setTimeout(r, Math.min(100, Math.max(0, until - Date.now()))));
          continue;
        }
        await run();
      }
      clearTimers();
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = undefined;
      if (current) {
        log.error({ rows: current.rows.size }, 'run history not written before the worker stopped (the reconciler settles those runs from pg-boss)');
        current.reject(new Error('run history writer closed before the write landed'));
        current = undefined;
      }
    },
    get pending() {
      return current?.rows.size ?? 0;
    },
  };
}

function merge(prev: RunUpdate, next: RunUpdate): RunUpdate {
  if (next.attempts < prev.attempts) return prev;
  const out: RunUpdate = next.attempts > prev.attempts ? { id: prev.id, attempts: next.attempts } : { ...prev };
  for (const [k, v] of Object.entries(next)) if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
  return out;
}
