import { sql, type Kysely } from 'kysely';
import type { TransactionSql } from 'postgres';
import { BOSS_SCHEMA } from '../platform/boss.ts';
import type { Sql } from '../platform/db.ts';
import type { RunTables } from './tables.ts';

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
  /**
   * Starts refused because an earlier attempt already completed the run (its job was claimed
   * again after that attempt's result landed: pg-boss expired it while the database was away,
   * say). The worker settles the job as completed without running the handler again.
   */
  finished: Set<string>;
}

/**
 * start / progress / retry-pending / finish, fenced: applies attempt updates to any number of
 * runs in one statement. An update lands only while its attempt holds the job's claim in pg-boss
 * (the job active at that attempt's retry count, or ended the way the update says: the worker
 * settles its job right after writing) and names the worker that started it; the api's
 * 'cancelled' is never overwritten. A refused update with a state is kept in
 * wombat.superseded_attempts. The claim is read from the statement's snapshot; a run changed
 * by someone else after it (the reconciler ending the attempt and failing its job in one
 * transaction) is left alone by the update, which re-checks the row's updated_at under its lock,
 * and reported superseded too. A canary's result gets its end-to-end latency here, from the run's
 * scheduled_for to this attempt's start. A cancel committed after this call reaches the job
 * through NOTIFY.
 *
 * `settleCompletedJobs`: completions also complete their pg-boss jobs in this statement. For
 * writes that were held back (the database was away when the handler finished, so the worker's
 * own settle of the job failed): the job's expiry may be close, and once the result is in the
 * history pg-boss must not run the job again. Otherwise the worker settles its jobs itself right
 * after, as pg-boss's work loop does.
 */
export async function applyAttemptUpdates(
  sql: Sql | TransactionSql,
  updates: AttemptUpdate[],
  opts: { synchronousCommit?: boolean; settleCompletedJobs?: boolean } = {},
): Promise<AttemptOutcome> {
  const out: AttemptOutcome = { cancelled: new Set(), superseded: new Set(), finished: new Set() };
  if (updates.length === 0) return out;
  const rows = updates.map(toRecord);
  // set_config(..., true) lasts until the end of the statement's own transaction, so one round trip
  // commits asynchronously without BEGIN/SET/COMMIT around it.
  const refused = await sql<{ id: string | null; outcome: 'cancelled' | 'superseded' | 'finished' | null }[]>`
    with v as (
      select * from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as v(
        id uuid, attempts int, state text, worker_id uuid, attempt_started_at timestamptz, progress float8, set_message boolean,
        progress_message text, result jsonb, error jsonb, finished_at timestamptz)
    ), c as (
      select v.*, r.job, r.state as run_state, r.updated_at as seen_at,
        (r.state = 'completed' and v.attempts > r.attempts) as done_before,
        coalesce(r.state <> 'cancelled' and v.attempts >= r.attempts and j.retry_count = v.attempts - 1
          and not (r.state = 'completed' and v.attempts > r.attempts)
          and (j.state = 'active'
            or (v.state = 'completed' and j.state = 'completed')
            or (v.state = 'failed' and j.state = 'failed')
            or (v.state = 'retrying' and j.state in ('retry', 'created')))
          and (v.state = 'running' or v.worker_id is null or r.worker_id is null or r.worker_id = v.worker_id), false) as live
      from v
      join wombat.runs r on r.id = v.id
      left join ${sql(BOSS_SCHEMA)}.job j on j.name = r.job and j.id = r.id
    ), moved as (
      update wombat.runs r set
        state = coalesce(c.state, r.state),
        attempts = c.attempts,
        worker_id = coalesce(c.worker_id, r.worker_id),
        started_at = coalesce(r.started_at, c.attempt_started_at),
        progress = case when c.state = 'completed' then 1 else coalesce(c.progress, r.progress) end,
        progress_message = case when c.set_message then c.progress_message else r.progress_message end,
        result = case
          when r.job = 'canary' and c.state = 'completed' then coalesce(c.result, '{}'::jsonb) || jsonb_build_object(
            'latencyMs', round((extract(epoch from c.attempt_started_at - coalesce(r.scheduled_for, r.published_at, r.created_at)) * 1000)::numeric, 3))
          else coalesce(c.result, r.result) end,
        error = coalesce(c.error, r.error),
        finished_at = case when c.state in ('completed', 'failed') then c.finished_at else r.finished_at end,
        updated_at = now()
      from c
      where r.id = c.id and c.live and r.updated_at = c.seen_at
      returning r.id
    ), settled as (
      -- settleCompletedJobs: a completion settles its job in the same statement, so that once the
      -- result is in the history pg-boss can no longer expire the job and run it again.
      update ${sql(BOSS_SCHEMA)}.job j set state = 'completed', completed_on = now(), output = coalesce(c.result, '{}'::jsonb)
      from c join moved m on m.id = c.id
      where ${opts.settleCompletedJobs === true}::boolean and c.state = 'completed' and j.name = c.job and j.id = c.id and j.state = 'active' and j.retry_count = c.attempts - 1
    ), kept as (
      insert into wombat.superseded_attempts (run_id, attempt, state, worker_id, result, error)
      select c.id, c.attempts, c.state, c.worker_id, c.result, c.error from c
      where not c.live and c.run_state <> 'cancelled' and c.state is not null
      on conflict do nothing
    )
    select null::uuid as id, null::text as outcome
      from (select set_config('synchronous_commit', coalesce(${opts.synchronousCommit === false ? 'off' : null}::text, current_setting('synchronous_commit')), true)) s
    union all
    select c.id, 'cancelled' from c where c.state = 'running' and c.run_state = 'cancelled'
    union all
    select c.id, 'finished' from c where c.state = 'running' and c.done_before
    union all
    select c.id, 'superseded' from c where c.run_state <> 'cancelled' and not (c.state = 'running' and c.done_before)
      and (not c.live or not exists (select 1 from moved m where m.id = c.id))`;
  for (const r of refused) if (r.id !== null && r.outcome !== null) out[r.outcome].add(r.id);
  return out;
}

/** A completion whose settlement in pg-boss may have been lost: the run, its job's queue and the attempt. */
export interface CompletedAttempt {
  id: string;
  job: string;
  attempts: number;
}

/** What settleCompletedAttempts did: jobs it completed, and jobs still waiting for their run's completion to land. */
export interface SettleOutcome {
  settled: string[];
  pending: string[];
}

/**
 * settle: makes pg-boss agree with completions its own settlement missed. A worker whose
 * handler completed, and whose history write landed, can still lose pg-boss's settlement of the
 * job (the database went away in between); pg-boss then fails the job at its expiry, or puts it
 * back for a retry, while the run reads completed. For each attempt given, the job is completed
 * when the run is completed at that very attempt and the job is still that attempt's: active,
 * waiting for its retry, or failed, at its retry count. Anything else (the job completed, retried
 * elsewhere, cancelled, gone) is left alone. An attempt whose job is active while its run is not
 * yet completed is reported pending: its history write has not landed yet.
 *
 * Runs are locked before jobs, the order the reconciler and applyAttemptUpdates lock in.
 */
export async function settleCompletedAttempts(sql: Sql, attempts: CompletedAttempt[]): Promise<SettleOutcome> {
  if (attempts.length === 0) return { settled: [], pending: [] };
  const rows = await sql<{ id: string; settled: boolean; pending: boolean }[]>`
    with want as (
      select * from jsonb_to_recordset(${JSON.stringify(attempts)}::text::jsonb) as w(id uuid, job text, attempts int)
    ), done as (
      select r.id, r.result, w.job, w.attempts from want w join wombat.runs r on r.id = w.id and r.job = w.job
      where r.state = 'completed' and r.attempts = w.attempts
      order by r.id
      for share of r
    ), settled as (
      update ${sql(BOSS_SCHEMA)}.job j set state = 'completed', completed_on = now(), output = coalesce(d.result, '{}'::jsonb)
      from done d
      where j.name = d.job and j.id = d.id and j.retry_count = d.attempts - 1 and j.state in ('active', 'retry', 'failed')
      returning j.id
    )
    select w.id,
      exists (select 1 from settled s where s.id = w.id) as settled,
      (not exists (select 1 from done d where d.id = w.id) and exists (
        select 1 from ${sql(BOSS_SCHEMA)}.job j where j.name = w.job and j.id = w.id and j.state = 'active' and j.retry_count = w.attempts - 1)) as pending
    from want w`;
  return { settled: rows.filter((r) => r.settled).map((r) => r.id), pending: rows.filter((r) => r.pending).map((r) => r.id) };
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
export async function handBackAttempts(db: Kysely<RunTables>, attempts: { id: string; job: string; attempts: number }[]): Promise<string[]> {
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
export async function listSupersededAttempts(db: Kysely<RunTables>, runId: string): Promise<SupersededAttempt[]> {
  const rows = await db
    .selectFrom('wombat.superseded_attempts')
    .select(['attempt', 'state', 'worker_id', 'error', 'recorded_at'])
    .where('run_id', '=', runId)
    .orderBy('recorded_at')
    .limit(50)
    .execute();
  return rows.map((r) => ({ attempt: r.attempt, state: r.state, workerId: r.worker_id, error: r.error, recordedAt: new Date(r.recorded_at) }));
}
