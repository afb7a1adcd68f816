import { sql, type Kysely } from 'kysely';
import type { TransactionSql } from 'postgres';
import { BOSS_SCHEMA } from '../boss.ts';
import type { CoreTables } from '../db-types.ts';
import type { Sql } from '../db.ts';

/**
 * The worker's transitions, one attempt at a time: start (queued/retrying ->
 * running), progress, retry-pending (running -> retrying) and finish (completed
 * or failed). One change to a run's row; fields left undefined keep what the row
 * has. Every entry names the attempt it comes from (and the worker running it),
 * which fences it: a late write from a superseded attempt is never the run's outcome.
 */
export interface AttemptUpdate {
  id: string;
  attempts: number;
  state?: 'running' | 'retrying' | 'completed' | 'failed';
  /** The worker process running the attempt (wombat.workers.id): recorded with 'running', checked on every later write. */
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

/** What a batch of attempt updates was refused, by run id. */
export interface AttemptOutcome {
  /** Starts refused because the api had cancelled the run: the worker aborts the job. */
  cancelled: Set<string>;
  /**
   * Writes refused because their attempt no longer holds the job's claim (the reconciler or
   * pg-boss ended it, it was retried elsewhere or handed back): kept in wombat.superseded_attempts,
   * never as the run's outcome. The worker aborts such a job if it is still running.
   */
  superseded: Set<string>;
}

/**
 * start / progress / retry-pending / finish, fenced: applies attempt updates to any number of
 * runs in one call (wombat.apply_attempt_updates, migration 0009). An update lands only while its
 * attempt holds the job's claim in pg-boss (the job active at that attempt's retry count, or
 * ended the way the update says) and names the worker that started it; the api's 'cancelled'
 * is never overwritten. A canary's result gets its end-to-end latency here, from the run's
 * scheduled_for to this attempt's start. A cancel committed after this call reaches the job
 * through NOTIFY.
 */
export async function applyAttemptUpdates(sql: Sql | TransactionSql, updates: AttemptUpdate[], opts: { synchronousCommit?: boolean } = {}): Promise<AttemptOutcome> {
  const out: AttemptOutcome = { cancelled: new Set(), superseded: new Set() };
  if (updates.length === 0) return out;
  const rows = updates.map(toRecord);
  const refused = await sql<{ id: string; outcome: 'cancelled' | 'superseded' }[]>`
    select id, outcome from wombat.apply_attempt_updates(${JSON.stringify(rows)}::text::jsonb, ${opts.synchronousCommit === false})`;
  for (const r of refused) out[r.outcome].add(r.id);
  return out;
}

/**
 * hand back: running -> queued, without spending an attempt. A worker that stops while jobs
 * run stops their handlers, lets pg-boss settle the jobs as failed (its own fenced statement, so
 * the batch settles as usual), then gives them back here in one statement: each job waits again
 * as if never fetched (pg-boss's restore, which its public api does not offer), so the next fetch
 * runs the same attempt number and a restart or a deploy never costs a retry or ends a healthy
 * run as failed. Fenced to each attempt: only a job still failed or waiting for its retry at that
 * attempt's retry count comes back (another worker may have fetched the retry meanwhile: then the
 * retry stands). Returns the run ids handed back.
 */
export async function handBackAttempts(db: Kysely<CoreTables>, attempts: { id: string; job: string; attempts: number }[]): Promise<string[]> {
  if (attempts.length === 0) return [];
  const res = await sql<{ id: string }>`
    with want as (
      select * from jsonb_to_recordset(${JSON.stringify(attempts)}::text::jsonb) as w(id uuid, job text, attempts int)
    ), locked as (
      -- The runs first, then the jobs: the order the reconciler and apply_attempt_updates lock in.
      select r.id from wombat.runs r join want w on w.id = r.id
      where r.attempts <= w.attempts and r.state in ('queued', 'running', 'retrying', 'failed')
      order by r.id
      for update of r
    ), restored as (
      update ${sql.table(`${BOSS_SCHEMA}.job`)} j
      set state = 'created', started_on = null, heartbeat_on = null, completed_on = null, start_after = now(), output = null
      from want w
      where j.name = w.job and j.id = w.id and j.state in ('retry', 'failed') and j.retry_count = w.attempts - 1
        and j.id in (select id from locked)
      returning j.id, w.attempts
    )
    update wombat.runs r set state = 'queued', worker_id = null, attempts = restored.attempts - 1, error = null, finished_at = null,
      progress_message = 'handed back: its worker stopped; it runs again on the next worker', updated_at = now()
    from restored
    where r.id = restored.id
    returning r.id`.execute(db);
  return res.rows.map((r) => r.id);
}

/** A write of a superseded attempt, as kept (what it tried to record, and when it was refused). */
export interface SupersededAttempt {
  attempt: number;
  state: string;
  workerId: string | null;
  error: unknown;
  recordedAt: Date;
}

/** The superseded attempts of a run, oldest first (at most 50). */
export async function listSupersededAttempts(db: Kysely<CoreTables>, runId: string): Promise<SupersededAttempt[]> {
  const rows = await db
    .selectFrom('wombat.superseded_attempts')
    .select(['attempt', 'state', 'worker_id', 'error', 'recorded_at'])
    .where('run_id', '=', runId)
    .orderBy('recorded_at')
    .limit(50)
    .execute();
  return rows.map((r) => ({ attempt: r.attempt, state: r.state, workerId: r.worker_id, error: r.error, recordedAt: new Date(r.recorded_at) }));
}
