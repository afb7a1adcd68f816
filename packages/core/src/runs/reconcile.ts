import { sql, type Kysely } from 'kysely';
import { fromKysely, type PgBoss } from 'pg-boss';
import { JOB_HEARTBEAT_SECONDS, isJobType } from '../jobs/contracts.ts';
import { BOSS_SCHEMA } from '../platform/boss.ts';
import { CLI_RUN_SILENT_SECONDS } from './cli.ts';
import { WORKER_LOST } from './states.ts';
import type { RunTables } from './tables.ts';

/**
 * lose: the reconciler's transition. pg-boss's job table and the worker registry
 * are the truth about a run that has a job; this sweep makes wombat.runs agree
 * with them when the worker that should have said how a run ended cannot:
 *
 * - the job completed, failed or was cancelled (or is gone) while the run still
 *   says queued, running or retrying: the run takes the job's outcome; a job
 *   that failed or vanished without its worker recording why ends the run
 *   failed with error code worker_lost (a dead letter);
 * - the run is running but pg-boss put its job back for a retry (expired): retrying;
 * - the run is running on a worker whose heartbeat stopped, or its job's pg-boss
 *   heartbeat stopped, for JOB_HEARTBEAT_S seconds counted from the later of the
 *   heartbeat and the database's return from an outage (opts.outageEndedAt): the
 *   job's attempt is failed in pg-boss (fenced to that attempt) and the run becomes
 *   retrying when pg-boss will retry it, failed with worker_lost when that was its
 *   last attempt. The attempt is superseded: its worker's later writes are refused
 *   (applyAttemptUpdates) and its handler is aborted at its next job heartbeat.
 *
 * Workers write a run's final state before they settle its job, so a snapshot in
 * which a job is terminal always shows the worker's own final write if there was
 * one: the sweep never overrides a real outcome. One engine sweeps at a time
 * (advisory lock); returns what changed, or null when another engine holds the lock.
 */
export interface ReconcileOutcome {
  /** Runs ended failed with worker_lost. */
  lost: string[];
  /** Runs moved to retrying (pg-boss runs them again). */
  retrying: string[];
  /** Runs that took a terminal job outcome (completed, cancelled) their worker had not recorded. */
  settled: string[];
  /**
   * Jobs still active in pg-boss whose run their worker had already ended before its settlement in
   * pg-boss could land (the database went away in between, or the worker died): settled now as the
   * run says, so pg-boss never runs them again. Also jobs pg-boss failed in the last 15 minutes
   * whose run a worker completed at that attempt (its settlement was lost): completed.
   */
  jobsSettled: string[];
}

interface Candidate {
  id: string;
  job: string;
  trigger: string;
  state: string;
  attempts: number;
  job_state: string | null;
  retry_count: number | null;
  retry_limit: number | null;
  output: unknown;
  job_finished_at: Date | null;
  worker_dead: boolean;
  heartbeat_stale: boolean;
}

const RECONCILE_LOCK = 'wombat.reconcile';

/** How far back the sweep looks for jobs pg-boss failed while their run reads completed. */
const RECENT_FAILURES_MINUTES = 15;

export interface ReconcileOptions {
  limit?: number;
  /**
   * When the caller last saw the database come back after it could not reach it (its first pass
   * after a gap), on the database's clock. Heartbeats are judged from the later of this, the
   * server's own start (pg_postmaster_start_time) and the heartbeat itself: staleness that
   * overlaps an outage is no evidence that a worker died.
   */
  outageEndedAt?: Date;
  /** A job heartbeat older than this is stale (JOB_HEARTBEAT_S; default JOB_HEARTBEAT_SECONDS). */
  jobHeartbeatSeconds?: number;
  /**
   * Queued runs checked per round, oldest first from where the last round stopped (the
   * caller keeps the object between rounds): a round's work then follows running attempts
   * and this slice, not the queued backlog. Unset: every queued run, every round.
   */
  queued?: QueuedSweep;
  /**
   * false: leave out the sweep of active jobs whose run already ended, a scan of pg-boss's job
   * table (it has no index on state), whose cost follows the jobs pg-boss keeps. Default true.
   */
  endedJobs?: boolean;
}

export interface QueuedSweep {
  slice: number;
  /** The last queued run the previous round checked; null: start from the oldest. */
  afterId: string | null;
}

/** The next slice of queued runs (index runs_queued), and where the sweep stands after it. */
async function queuedSlice(trx: Kysely<RunTables>, sweep: QueuedSweep): Promise<string[]> {
  // From the previous slice's last run, as it is now: gone (deleted), the sweep starts over.
  const after = sweep.afterId === null ? sql`` : sql`and (created_at, id) > (select c.created_at, c.id from wombat.runs c where c.id = ${sweep.afterId})`;
  const { rows } = await sql<{ id: string }>`
    select id from wombat.runs where state = 'queued' ${after}
    order by created_at, id limit ${sweep.slice}`.execute(trx);
  sweep.afterId = rows.length < sweep.slice ? null : (rows.at(-1)?.id ?? null);
  return rows.map((r) => r.id);
}

export async function reconcileRuns(db: Kysely<RunTables>, boss: PgBoss, opts: ReconcileOptions = {}): Promise<ReconcileOutcome | null> {
  const limit = opts.limit ?? 500;
  const since = sql<Date>`greatest(pg_postmaster_start_time(), ${opts.outageEndedAt ?? null}::timestamptz)`;
  // A worker is dead once its registry beat, or its job's pg-boss heartbeat, is older than the
  // limit counted from the later of the beat and the database's return.
  const workerDead = sql<boolean>`(w.id is null or w.stopped_at is not null
    or greatest(w.last_beat_at, ${since}) < now() - make_interval(secs => w.heartbeat_interval_ms * 3 / 1000.0))`;
  const heartbeatStale = sql<boolean>`(greatest(coalesce(j.heartbeat_on, j.started_on), ${since}) < now() - make_interval(secs => ${opts.jobHeartbeatSeconds ?? JOB_HEARTBEAT_SECONDS}))`;
  return db.transaction().execute(async (trx) => {
    const locked = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(hashtext(${RECONCILE_LOCK})) as locked`.execute(trx);
    if (locked.rows[0]?.locked !== true) return null;
    const jobTable = sql.table(`${BOSS_SCHEMA}.job`);
    // Running and retrying runs (few: attempts in flight) every round; queued ones a slice at a time.
    const which = opts.queued
      ? sql`(r.state in ('running', 'retrying') or (r.state = 'queued' and r.id = any(${await queuedSlice(trx, opts.queued)}::uuid[])))`
      : sql`r.state in ('queued', 'running', 'retrying')`;
    // Only runs with a job: held runs have none, and the engine owns them.
    const found = await sql<Candidate>`
      select r.id, r.job, r.trigger, r.state, r.attempts, j.state::text as job_state, j.retry_count, j.retry_limit, j.output,
             j.completed_on as job_finished_at,
             (r.worker_id is not null and ${workerDead}) as worker_dead,
             ${heartbeatStale} as heartbeat_stale
      from wombat.runs r
      left join ${jobTable} j on j.id = r.id and j.name = r.job
      left join wombat.workers w on w.id = r.worker_id
      where ${which}
        -- A backfill's parent never has a job: releaseBackfills ends it with its children.
        and not (r.trigger = 'backfill' and r.parent_id is null)
        -- A run of \`wombat run\` has no job either: its process owns it while it beats (cli.ts).
        and not (r.trigger = 'cli' and j.id is null and r.updated_at > now() - make_interval(secs => ${CLI_RUN_SILENT_SECONDS}))
        and (j.id is null
          or j.state in ('completed', 'failed', 'cancelled')
          or (r.state = 'running' and j.state in ('created', 'retry'))
          or (j.state = 'active' and (
               (r.state = 'running' and j.retry_count = r.attempts - 1 and r.worker_id is not null and ${workerDead})
               -- Also covers a worker that died after claiming the job, before it recorded the start.
               or ${heartbeatStale})))
        -- A run recorded in a transaction still open has its job in that transaction too.
        and r.created_at < now() - interval '2 seconds'
      order by r.created_at
      limit ${limit}
      for update of r skip locked`.execute(trx);
    const out: ReconcileOutcome = { lost: [], retrying: [], settled: [], jobsSettled: [] };
    const conn = { db: fromKysely(trx) };
    for (const c of found.rows) {
      if (c.job_state === 'active') {
        if (!isJobType(c.job)) continue;
        const why = c.worker_dead ? 'its worker stopped sending heartbeats' : 'its job stopped sending heartbeats';
        const error = { code: WORKER_LOST, message: `attempt ${c.retry_count! + 1} was lost: ${why}` };
        const res = await boss.fail(c.job, { id: c.id, retryCount: c.retry_count! }, error, conn);
        if ((res as { affected?: number }).affected === 0) continue; // the attempt settled meanwhile
        const retry = c.retry_count! < c.retry_limit!;
        await setLost(trx, c.id, retry ? 'retrying' : 'failed', error);
        (retry ? out.retrying : out.lost).push(c.id);
        continue;
      }
      if (c.job_state === 'created' || c.job_state === 'retry') {
        const error = { code: WORKER_LOST, message: `attempt ${c.attempts} ended without its worker recording how; pg-boss will run the job again` };
        await setLost(trx, c.id, 'retrying', error);
        out.retrying.push(c.id);
        continue;
      }
      if (c.job_state === 'completed') {
        await sql`update wombat.runs set state = 'completed', progress = 1, result = coalesce(${JSON.stringify(c.output ?? {})}::text::jsonb, result),
                    finished_at = coalesce(${c.job_finished_at}::timestamptz, now()), updated_at = now() where id = ${c.id}`.execute(trx);
        out.settled.push(c.id);
        continue;
      }
      if (c.job_state === 'cancelled') {
        await sql`update wombat.runs set state = 'cancelled', finished_at = coalesce(${c.job_finished_at}::timestamptz, now()), updated_at = now() where id = ${c.id}`.execute(trx);
        out.settled.push(c.id);
        continue;
      }
      const message =
        c.trigger === 'cli'
          ? `the wombat run process that ran it stopped (no beat for ${CLI_RUN_SILENT_SECONDS} s)`
          : c.job_state === 'failed'
          ? `pg-boss failed the job (${jobMessage(c.output)}) and no worker recorded the attempt's end`
          : 'the job is gone from pg-boss and no worker recorded how the run ended';
      await setLost(trx, c.id, 'failed', { code: WORKER_LOST, message, ...(c.output ? { job_output: c.output } : {}) });
      out.lost.push(c.id);
    }
    if (opts.endedJobs === false) return out;
    // From the job side: active jobs are few, finished runs are many (index job_common_wombat_active).
    // Then jobs pg-boss failed in the last RECENT_FAILURES_MINUTES while their run reads completed at
    // that very attempt (job_common_wombat_failed): the worker's settlement failed after the run's
    // result landed, and pg-boss's fallback (or its expiry) failed the job; its handler did
    // complete, so the job is completed as the run says.
    type Ended = { id: string; job: string; state: 'completed' | 'failed'; job_state: string; result: unknown; error: unknown; retry_count: number };
    const active = await sql<Ended>`
      select r.id, r.job, r.state, 'active' as job_state, r.result, r.error, j.retry_count
      from ${jobTable} j
      join wombat.runs r on r.id = j.id and r.job = j.name
      where j.state = 'active' and r.state in ('completed', 'failed') and j.retry_count = r.attempts - 1 and ${heartbeatStale}
      limit ${limit}
      for update of r skip locked`.execute(trx);
    const failed = await sql<Ended>`
      select r.id, r.job, r.state, 'failed' as job_state, r.result, r.error, j.retry_count
      from ${jobTable} j
      join wombat.runs r on r.id = j.id and r.job = j.name
      where j.state = 'failed' and j.completed_on > now() - make_interval(mins => ${RECENT_FAILURES_MINUTES})
        and r.state = 'completed' and j.retry_count = r.attempts - 1
      limit ${limit}
      for update of r skip locked`.execute(trx);
    for (const e of [...active.rows, ...failed.rows]) {
      if (!isJobType(e.job)) continue;
      if (e.job_state === 'failed') {
        const res = await sql`update ${jobTable} set state = 'completed', completed_on = now(), output = ${JSON.stringify(e.result ?? {})}::text::jsonb
          where name = ${e.job} and id = ${e.id} and state = 'failed' and retry_count = ${e.retry_count}`.execute(trx);
        if (Number(res.numAffectedRows ?? 0) > 0) out.jobsSettled.push(e.id);
        continue;
      }
      const job = { id: e.id, retryCount: e.retry_count };
      const res = e.state === 'completed' ? await boss.complete(e.job, job, (e.result ?? {}) as object, conn) : await boss.fail(e.job, job, (e.error ?? {}) as object, conn);
      if ((res as { affected?: number }).affected !== 0) out.jobsSettled.push(e.id);
    }
    return out;
  });
}

function jobMessage(output: unknown): string {
  const o = output as { message?: unknown; value?: { message?: unknown } } | null;
  const m = o?.message ?? o?.value?.message;
  return typeof m === 'string' ? m : 'no reason given';
}

async function setLost(trx: Kysely<RunTables>, id: string, state: 'retrying' | 'failed', error: object): Promise<void> {
  await sql`update wombat.runs set state = ${state}, error = ${JSON.stringify(error)}::text::jsonb,
              finished_at = case when ${state} = 'failed' then now() else finished_at end, updated_at = now()
            where id = ${id}`.execute(trx);
}
