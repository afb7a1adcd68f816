import type { TransactionSql } from 'postgres';
import type { Logger, Sql } from '@wombat/core';

/**
 * One change to a run's row. Fields left undefined keep what the row has. Every entry names
 * the attempt it comes from, so a late write from an abandoned attempt never overwrites a
 * newer one.
 */
export interface RunUpdate {
  id: string;
  attempts: number;
  state?: 'running' | 'queued' | 'completed' | 'failed';
  /** This attempt's start; the row keeps the first attempt's start in started_at. */
  attemptStartedAt?: string;
  progress?: number;
  progressMessage?: string | null;
  result?: unknown;
  error?: unknown;
  finishedAt?: string;
}

/** What one flush found: the runs whose 'running' write it skipped because the api had cancelled them. */
export interface FlushOutcome {
  cancelled: ReadonlySet<string>;
}

export interface HistoryWriter {
  /**
   * Buffers a change; the promise resolves once it is in Postgres, with what its flush found.
   * Callers may ignore it.
   */
  write(update: RunUpdate): Promise<FlushOutcome>;
  /** Writes everything buffered now. */
  flush(): Promise<void>;
  /** Flushes and refuses later writes. */
  close(): Promise<void>;
  readonly pending: number;
}

interface Pending {
  rows: Map<string, RunUpdate>;
  done: Promise<FlushOutcome>;
  resolve: (outcome: FlushOutcome) => void;
  reject: (err: unknown) => void;
}

/**
 * Run-history writes, batched: updates for the same run coalesce in memory and every flush is one
 * UPDATE over all buffered rows, so a batch of 500 trivial jobs costs one statement, not 1000.
 * Flushes run one at a time, which keeps the updates of one run in order.
 *
 * The statement never touches a 'cancelled' run (the api owns that state) and ignores updates from
 * an attempt older than the one recorded. It reports the runs it did not move to 'running' because
 * they were cancelled, so a job cancelled just before it started is stopped without a round trip
 * of its own. A canary's result gets its end-to-end latency here, from
 * the run's scheduled_for to this attempt's start, with no extra round trip.
 */
export function createHistoryWriter(opts: { sql: Sql; log: Logger; flushMs: number; batchRows: number }): HistoryWriter {
  const log = opts.log.child({ component: 'history' });
  let current: Pending | undefined;
  let timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  let running: Promise<void> | undefined;
  let closed = false;

  function newPending(): Pending {
    let resolve!: (outcome: FlushOutcome) => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<FlushOutcome>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A caller that does not await a write must not see an unhandled rejection; flush failures are logged.
    done.catch(() => {});
    return { rows: new Map(), done, resolve, reject };
  }

  // Group commit: one flush at a time; whatever arrives while a statement runs goes in the next one.
  function run(): Promise<void> {
    if (timer) {
      clearTimeout(timer as NodeJS.Timeout);
      clearImmediate(timer as NodeJS.Immediate);
      timer = undefined;
    }
    // Only started with rows to write, so the loop awaits before it can clear `running`.
    if (!running && current) {
      running = (async () => {
        while (current) {
          const batch = current;
          current = undefined;
          await writeBatch(batch);
        }
        running = undefined;
      })();
    }
    return running ?? Promise.resolve();
  }

  function schedule(): void {
    if (running || timer) return;
    timer = opts.flushMs > 0 ? setTimeout(run, opts.flushMs) : setImmediate(run);
  }

  async function writeBatch(batch: Pending): Promise<void> {
    const rows = [...batch.rows.values()].map(toRecord);
    try {
      // Asynchronous commit is safe here: a job's final write is committed before pg-boss settles
      // the job, and pg-boss's synchronous commit flushes the WAL up to and past this one. What a
      // Postgres crash can lose is only a 'running' or progress row of a job that then runs again.
      const cancelled = await updateRuns(opts.sql, rows, { synchronousCommit: false });
      batch.resolve({ cancelled });
    } catch (err) {
      log.error({ err, rows: rows.length }, 'run history write failed');
      batch.reject(err);
    }
  }

  return {
    write(update) {
      if (closed) return Promise.reject(new Error('run history writer is closed'));
      current ??= newPending();
      const prev = current.rows.get(update.id);
      current.rows.set(update.id, prev ? merge(prev, update) : update);
      const done = current.done;
      if (current.rows.size >= opts.batchRows) void run();
      else schedule();
      return done;
    },
    async flush() {
      const pending = current?.done;
      await run();
      await pending?.catch(() => {});
    },
    async close() {
      closed = true;
      await run();
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

function toRecord(u: RunUpdate): Record<string, unknown> {
  return {
    id: u.id,
    attempts: u.attempts,
    state: u.state ?? null,
    attempt_started_at: u.attemptStartedAt ?? null,
    progress: u.progress ?? null,
    set_message: u.progressMessage !== undefined,
    progress_message: u.progressMessage ?? null,
    result: u.result === undefined ? null : u.result,
    error: u.error ?? null,
    finished_at: u.finishedAt ?? null,
  };
}

/**
 * One statement for any number of runs; returns the ids of the runs it was asked to move to
 * 'running' and left alone because they are 'cancelled'. The final select reads the rows as they
 * were before the update (one snapshot), which is what the update's own cancelled check saw; a
 * cancel committed after that snapshot reaches the job through NOTIFY.
 */
export async function updateRuns(sql: Sql | TransactionSql, rows: Record<string, unknown>[], opts: { synchronousCommit?: boolean } = {}): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  // set_config(..., true) lasts until the end of the statement's own transaction, so one round trip
  // commits asynchronously without BEGIN/SET/COMMIT around it.
  const found = await sql<{ id: string | null }[]>`
    with v as (
      select * from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as v(
        id uuid, attempts int, state text, attempt_started_at timestamptz, progress float8, set_message boolean,
        progress_message text, result jsonb, error jsonb, finished_at timestamptz)
    ), moved as (
      update wombat.runs r set
        state = coalesce(v.state, r.state),
        attempts = v.attempts,
        started_at = coalesce(r.started_at, v.attempt_started_at),
        progress = case when v.state = 'completed' then 1 else coalesce(v.progress, r.progress) end,
        progress_message = case when v.set_message then v.progress_message else r.progress_message end,
        result = case
          when r.job = 'canary' and v.state = 'completed' then coalesce(v.result, '{}'::jsonb) || jsonb_build_object(
            'latencyMs', round((extract(epoch from v.attempt_started_at - coalesce(r.scheduled_for, r.published_at, r.created_at)) * 1000)::numeric, 3))
          else coalesce(v.result, r.result) end,
        error = coalesce(v.error, r.error),
        finished_at = case when v.state in ('completed', 'failed') then v.finished_at else r.finished_at end,
        updated_at = now()
      from v
      where r.id = v.id and r.state <> 'cancelled' and v.attempts >= r.attempts
    )
    select null::uuid as id from (select set_config('synchronous_commit', coalesce(${opts.synchronousCommit === false ? 'off' : null}::text, current_setting('synchronous_commit')), true)) c
    union all
    select v.id from v join wombat.runs r on r.id = v.id where v.state = 'running' and r.state = 'cancelled'`;
  return new Set(found.flatMap((r) => (r.id === null ? [] : [r.id])));
}
