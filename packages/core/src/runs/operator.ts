import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { fromKysely, type PgBoss } from 'pg-boss';
import { CANCEL_CHANNEL, checkJobParams, isJobType } from '../jobs/contracts.ts';
import { BOSS_SCHEMA } from '../platform/boss.ts';
import { AppError, ValidationError } from '../platform/errors.ts';
import { getSchedule } from '../schedules/store.ts';
import type { SchedulerTables } from '../schedules/tables.ts';
import { cancelChildRuns } from './backfill.ts';
import { insertRunAndSend, publishRun, scheduleJobOptions } from './record.ts';
import { releaseWaitingRunNow } from './release-waiting.ts';
import { isActiveRunState, type RunState, type RunTrigger } from './states.ts';
import type { RunTables } from './tables.ts';

/** Transitions people ask for (api, CLI): trigger, cancel, requeue, purge. */
type Db = Kysely<RunTables>;

/**
 * A manual run of a schedule, now: trigger 'manual', works paused or not and
 * whether or not the scheduler is enabled. Returns the run id, or null for an
 * unknown id; params given here replace the schedule's (ValidationError if they
 * do not fit the job). A manual run does not wait for the schedule's prerequisites
 * (after): the operator asked for it now. With `force` (and no params), a run of the
 * schedule waiting for its prerequisites is released now instead of a second run
 * being created; without one waiting it is an ordinary manual run.
 */
export async function triggerSchedule(db: Kysely<RunTables & SchedulerTables>, boss: PgBoss, id: number, opts: { params?: unknown; force?: boolean } = {}): Promise<string | null> {
  const s = await getSchedule(db, id);
  if (!s) return null;
  if (opts.force && opts.params === undefined) {
    const released = await releaseWaitingRunNow(db, boss, s);
    if (released) return released.id;
  }
  let params = s.params;
  if (opts.params !== undefined) {
    const check = checkJobParams(s.job, opts.params);
    if (!check.ok) throw new ValidationError(check.problems);
    params = check.value as object;
  }
  return publishRun(db, boss, { job: s.job, params, trigger: 'manual', scheduleId: s.id, ...scheduleJobOptions(s) });
}

export type CancelOutcome = { ok: true; previous: RunState } | { ok: false; state: RunState };

/**
 * cancel: any unfinished run -> cancelled. The pg-boss job is cancelled (a queued
 * job is never fetched, an active one cannot be completed; a held run has none),
 * the run becomes 'cancelled', and a NOTIFY asks whichever worker holds it to
 * abort (a backfill's parent: its unfinished children are cancelled so): all in one transaction, so the notification is delivered only once the
 * state change is visible. Undefined for an unknown id.
 */
export async function cancelRun(db: Db, boss: PgBoss, id: string): Promise<CancelOutcome | undefined> {
  return db.transaction().execute(async (trx) => {
    const run = await trx.selectFrom('wombat.runs').select(['job', 'state', 'trigger', 'parent_id']).where('id', '=', id).forUpdate().executeTakeFirst();
    if (!run) return undefined;
    if (!isActiveRunState(run.state)) return { ok: false, state: run.state };
    // A backfill's parent has no job of its own: cancelling it cancels its unfinished children.
    const backfill = run.trigger === 'backfill' && run.parent_id === null;
    if (backfill) await cancelChildRuns(trx, boss, id);
    else if (run.state !== 'held' && run.state !== 'waiting' && isJobType(run.job)) await boss.cancel(run.job, id, { db: fromKysely(trx) });
    await trx
      .updateTable('wombat.runs')
      .set({ state: 'cancelled', finished_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
      .where('id', '=', id)
      .execute();
    await sql`select pg_notify(${CANCEL_CHANNEL}, ${id})`.execute(trx);
    return { ok: true, previous: run.state };
  });
}

/**
 * requeue: a finished run is never run again in place; a new run with the same
 * job and params is recorded and sent, and the two are linked both ways. The
 * `requeued_as is null` guard makes a second requeue of the same run a conflict
 * instead of a duplicate.
 */
export async function requeueRun(
  db: Db,
  boss: PgBoss,
  id: string,
  opts: { trigger: RunTrigger; notFoundCode?: string; onlyDeadLetter?: boolean },
): Promise<string> {
  return db.transaction().execute(async (trx) => {
    const run = await trx.selectFrom('wombat.runs').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
    if (!run) throw new AppError(opts.notFoundCode ?? 'run_not_found', `no ${opts.onlyDeadLetter ? 'dead letter' : 'task'} with id ${id}`);
    if (opts.onlyDeadLetter && run.state !== 'failed') {
      throw new AppError('not_a_dead_letter', `run ${id} is ${run.state}, not failed: only failed runs are dead letters`);
    }
    if (isActiveRunState(run.state)) {
      throw new AppError('task_not_finished', `run ${id} is still ${run.state}; cancel it first or wait for it to finish`);
    }
    if (run.trigger === 'backfill' && run.parent_id === null) {
      throw new AppError('backfill_not_requeued', `run ${id} is a backfill, which has no job to run again: start a new backfill of the range (with --rerun to run completed occurrences again)`);
    }
    if (run.requeued_as) throw new AppError('already_requeued', `run ${id} was already requeued as ${run.requeued_as}`, { details: { requeued_as: run.requeued_as } });
    if (!isJobType(run.job)) throw new AppError('invalid_job', `run ${id} has job "${run.job}", which this version of Wombat cannot run`);
    const newId = randomUUID();
    // The new run keeps the timeout and retry settings the first one was sent with, while pg-boss still has its job.
    const settings = await sql<{ expire_seconds: number; retry_limit: number; retry_delay: number; retry_backoff: boolean; priority: number }>`
      select expire_seconds, retry_limit, retry_delay, retry_backoff, priority from ${sql.table(`${BOSS_SCHEMA}.job`)} where id = ${id}`.execute(trx);
    const s = settings.rows[0];
    await insertRunAndSend(trx as Transaction<RunTables>, boss, {
      id: newId,
      job: run.job,
      params: (run.params ?? {}) as object,
      trigger: opts.trigger,
      scheduleId: run.schedule_id,
      parentId: run.parent_id,
      // A backfill's child stays its occurrence: what it collects and what depends on it go by that instant.
      ...(run.trigger === 'backfill' && run.scheduled_for ? { scheduledFor: new Date(run.scheduled_for) } : {}),
      retryOf: id,
      ...(s ? { timeoutSeconds: s.expire_seconds, retryLimit: s.retry_limit, retryDelaySeconds: s.retry_delay, retryBackoff: s.retry_backoff, priority: s.priority } : {}),
    });
    await trx.updateTable('wombat.runs').set({ requeued_as: newId, updated_at: sql<Date>`now()` }).where('id', '=', id).execute();
    return newId;
  });
}

/** Deletes dead letters (failed, not requeued) that finished before `before`; returns how many. */
export async function purgeDeadLetters(db: Db, before: Date, job?: string): Promise<number> {
  let q = db.deleteFrom('wombat.runs').where('state', '=', 'failed').where('requeued_as', 'is', null).where('finished_at', '<', before);
  if (job !== undefined) q = q.where('job', '=', job);
  const res = await q.executeTakeFirst();
  return Number(res.numDeletedRows);
}

/**
 * Deletes one batch of finished runs older than the cutoff (tasks by their own TTL); returns how
 * many. The run roll-ups say first whether any run finished before the earlier cutoff: when none
 * did, the runs are not read at all (wombat.runs has no index on finished_at).
 */
export async function deleteFinishedRuns(db: Db | Transaction<RunTables>, opts: { taskTtlDays: number; retentionDays: number; batchSize: number }): Promise<number> {
  const cutoff = sql`now() - make_interval(days => least(${opts.taskTtlDays}::int, ${opts.retentionDays}::int))`;
  const res = await sql`
    delete from wombat.runs where id in (
      select id from wombat.runs
      where exists (select 1 from wombat.run_counts where kind = 'finished' and minute < ${cutoff} and n > 0
                    union all
                    select 1 from wombat.run_count_deltas where kind = 'finished' and minute < ${cutoff} and n > 0)
        and finished_at is not null and state in ('completed', 'failed', 'cancelled', 'skipped', 'missed')
        and finished_at < now() - make_interval(days => least(${opts.taskTtlDays}::int, ${opts.retentionDays}::int))
        and finished_at < now() - make_interval(days => case when trigger = 'task' then ${opts.taskTtlDays}::int else ${opts.retentionDays}::int end)
      limit ${opts.batchSize})`.execute(db);
  return Number(res.numAffectedRows ?? 0);
}
