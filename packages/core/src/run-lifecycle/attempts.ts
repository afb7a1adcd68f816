import type { TransactionSql } from 'postgres';
import type { Sql } from '../db.ts';

/**
 * The worker's transitions, one attempt at a time: start (queued/retrying ->
 * running), progress, retry-pending (running -> retrying) and finish (completed
 * or failed). One change to a run's row; fields left undefined keep what the row
 * has. Every entry names the attempt it comes from, so a late write from an
 * abandoned attempt never overwrites a newer one.
 */
export interface AttemptUpdate {
  id: string;
  attempts: number;
  state?: 'running' | 'retrying' | 'completed' | 'failed';
  /** The worker process running the attempt (wombat.workers.id); written with 'running'. */
  workerId?: string;
  /** This attempt's start; the row keeps the first attempt's start in started_at. */
  attemptStartedAt?: string;
  progress?: number;
  progressMessage?: string | null;
  result?: unknown;
  error?: unknown;
  finishedAt?: string;
}

/** The row as the statement reads it; fields left unset are omitted (the recordset reads them as null, which keeps the row's value). */
function toRecord(u: AttemptUpdate): Record<string, unknown> {
  const r: Record<string, unknown> = { id: u.id, attempts: u.attempts };
  if (u.state !== undefined) r.state = u.state;
  if (u.workerId !== undefined) r.worker_id = u.workerId;
  if (u.attemptStartedAt !== undefined) r.attempt_started_at = u.attemptStartedAt;
  if (u.progress !== undefined) r.progress = u.progress;
  if (u.progressMessage !== undefined) {
    r.set_message = true;
    r.progress_message = u.progressMessage;
  }
  if (u.result !== undefined && u.result !== null) r.result = u.result;
  if (u.error !== undefined && u.error !== null) r.error = u.error;
  if (u.finishedAt !== undefined) r.finished_at = u.finishedAt;
  return r;
}

/**
 * Applies attempt updates to any number of runs in one statement; returns the ids
 * of the runs it was asked to move to 'running' and left alone because they are
 * 'cancelled'. The statement never touches a 'cancelled' run (the api owns that
 * state) and ignores updates from an attempt older than the one recorded. A
 * canary's result gets its end-to-end latency here, from the run's scheduled_for
 * to this attempt's start. The final select reads the rows as they were before
 * the update (one snapshot), which is what the update's own cancelled check saw;
 * a cancel committed after that snapshot reaches the job through NOTIFY.
 */
export async function applyAttemptUpdates(sql: Sql | TransactionSql, updates: AttemptUpdate[], opts: { synchronousCommit?: boolean } = {}): Promise<Set<string>> {
  if (updates.length === 0) return new Set();
  const rows = updates.map(toRecord);
  // set_config(..., true) lasts until the end of the statement's own transaction, so one round trip
  // commits asynchronously without BEGIN/SET/COMMIT around it.
  const found = await sql<{ id: string | null }[]>`
    with v as (
      select * from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as v(
        id uuid, attempts int, state text, worker_id uuid, attempt_started_at timestamptz, progress float8, set_message boolean,
        progress_message text, result jsonb, error jsonb, finished_at timestamptz)
    ), moved as (
      update wombat.runs r set
        state = coalesce(v.state, r.state),
        attempts = v.attempts,
        worker_id = coalesce(v.worker_id, r.worker_id),
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
