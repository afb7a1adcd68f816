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
 * hand back: running -> queued, without spending an attempt. A worker that stops while a job
 * runs stops the handler, lets pg-boss settle the job as failed (its own fenced statement, so
 * the batch settles as usual), then gives it back here: the job waits again as if never fetched
 * (pg-boss's restore, which its public api does not offer), so the next fetch runs the same
 * attempt number and a restart or a deploy never costs a retry or ends a healthy run as failed.
 * Fenced to this attempt: only a job still failed or waiting for its retry at this attempt's
 * retry count comes back (another worker may have fetched the retry meanwhile: then the retry
 * stands). Returns whether it was handed back.
 */
export async function handBackAttempt(db: Kysely<CoreTables>, a: { id: string; job: string; attempts: number }): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    // The run first, then the job: the order the reconciler and apply_attempt_updates lock in.
    const run = await sql<{ id: string }>`
      select id from wombat.runs where id = ${a.id} and attempts <= ${a.attempts} and state in ('queued', 'running', 'retrying', 'failed') for update`.execute(trx);
    if (run.rows.length === 0) return false;
    const restored = await sql<{ id: string }>`
      update ${sql.table(`${BOSS_SCHEMA}.job`)}
      set state = 'created', started_on = null, heartbeat_on = null, completed_on = null, start_after = now(), output = null
      where name = ${a.job} and id = ${a.id} and state in ('retry', 'failed') and retry_count = ${a.attempts - 1}
      returning id`.execute(trx);
    if (restored.rows.length === 0) return false;
    await sql`update wombat.runs set state = 'queued', worker_id = null, attempts = ${a.attempts - 1}, error = null, finished_at = null,
                progress_message = 'handed back: its worker stopped; it runs again on the next worker', updated_at = now()
              where id = ${a.id}`.execute(trx);
    return true;
  });
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
