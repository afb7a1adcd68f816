import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import { AppError, BOSS_SCHEMA, CANCEL_CHANNEL, fromKysely, insertRunAndSend, isJobType, type CoreTables, type PgBoss, type RunsTable, type RunState, type RunTrigger } from '@wombat/core';

/** wombat.runs with the links of migration 0005. */
export interface ApiRunsTable extends RunsTable {
  retry_of: string | null;
  requeued_as: string | null;
}
export interface ApiTables {
  'wombat.runs': ApiRunsTable;
}
export type ApiDb = Kysely<ApiTables>;
export type ApiRun = Selectable<ApiRunsTable>;

export function apiDb(db: Kysely<CoreTables>): ApiDb {
  return db as unknown as ApiDb;
}

export async function getRun(db: ApiDb, id: string): Promise<ApiRun | undefined> {
  return db.selectFrom('wombat.runs').selectAll().where('id', '=', id).executeTakeFirst();
}

export interface RunFilter {
  scheduleId?: number | undefined;
  job?: string | undefined;
  state?: RunState | undefined;
  trigger?: RunTrigger | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  limit: number;
  offset: number;
}

/** Runs newest first, filtered and paged; `total` counts every match. */
export async function listRuns(db: ApiDb, f: RunFilter): Promise<{ runs: ApiRun[]; total: number }> {
  let q = db.selectFrom('wombat.runs');
  if (f.scheduleId !== undefined) q = q.where('schedule_id', '=', f.scheduleId);
  if (f.job !== undefined) q = q.where('job', '=', f.job);
  if (f.state !== undefined) q = q.where('state', '=', f.state);
  if (f.trigger !== undefined) q = q.where('trigger', '=', f.trigger);
  if (f.since !== undefined) q = q.where('created_at', '>=', f.since as never);
  if (f.until !== undefined) q = q.where('created_at', '<', f.until as never);
  const [runs, count] = await Promise.all([
    q.selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(f.limit).offset(f.offset).execute(),
    q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { runs, total: Number(count.n) };
}

export interface DeadLetterFilter {
  job?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  limit: number;
  offset: number;
}

/** Dead letters: runs whose final attempt failed and that nobody requeued yet. */
export async function listDeadLetters(db: ApiDb, f: DeadLetterFilter): Promise<{ runs: ApiRun[]; total: number }> {
  let q = db.selectFrom('wombat.runs').where('state', '=', 'failed').where('requeued_as', 'is', null);
  if (f.job !== undefined) q = q.where('job', '=', f.job);
  if (f.since !== undefined) q = q.where('finished_at', '>=', f.since);
  if (f.until !== undefined) q = q.where('finished_at', '<', f.until);
  const [runs, count] = await Promise.all([
    q.selectAll().orderBy('finished_at', 'desc').orderBy('id', 'desc').limit(f.limit).offset(f.offset).execute(),
    q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { runs, total: Number(count.n) };
}

export type CancelOutcome = { ok: true; previous: RunState } | { ok: false; state: RunState };

/**
 * Cancels a queued or running run. The pg-boss job is cancelled (a queued job is
 * never fetched, an active one cannot be completed), the run becomes 'cancelled',
 * and a NOTIFY asks whichever worker holds it to abort: all in one transaction, so
 * the notification is delivered only once the state change is visible.
 */
export async function cancelRun(db: ApiDb, boss: PgBoss, id: string): Promise<CancelOutcome | undefined> {
  return db.transaction().execute(async (trx) => {
    const run = await trx.selectFrom('wombat.runs').select(['job', 'state']).where('id', '=', id).forUpdate().executeTakeFirst();
    if (!run) return undefined;
    if (run.state !== 'queued' && run.state !== 'running') return { ok: false, state: run.state };
    if (isJobType(run.job)) await boss.cancel(run.job, id, { db: fromKysely(trx as never) });
    await trx
      .updateTable('wombat.runs')
      .set({ state: 'cancelled', finished_at: sql<Date>`now()`, updated_at: sql<never>`now()` })
      .where('id', '=', id)
      .execute();
    await sql`select pg_notify(${CANCEL_CHANNEL}, ${id})`.execute(trx);
    return { ok: true, previous: run.state };
  });
}

/**
 * Publishes a new run with the job and params of a finished one and links the
 * two. The `requeued_as is null` guard makes a second requeue of the same run a
 * conflict instead of a duplicate.
 */
export async function republishRun(
  db: ApiDb,
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
    if (run.state === 'queued' || run.state === 'running') {
      throw new AppError('task_not_finished', `run ${id} is still ${run.state}; cancel it first or wait for it to finish`);
    }
    if (run.requeued_as) throw new AppError('already_requeued', `run ${id} was already requeued as ${run.requeued_as}`, { details: { requeued_as: run.requeued_as } });
    if (!isJobType(run.job)) throw new AppError('invalid_job', `run ${id} has job "${run.job}", which this version of Wombat cannot run`);
    const newId = randomUUID();
    // The new run keeps the timeout and retry settings the first one was sent with, while pg-boss still has its job.
    const settings = await sql<{ expire_seconds: number; retry_limit: number; retry_delay: number; retry_backoff: boolean; priority: number }>`
      select expire_seconds, retry_limit, retry_delay, retry_backoff, priority from ${sql.table(`${BOSS_SCHEMA}.job`)} where id = ${id}`.execute(trx);
    const s = settings.rows[0];
    await insertRunAndSend(trx as unknown as Transaction<CoreTables>, boss, {
      id: newId,
      job: run.job,
      params: (run.params ?? {}) as object,
      trigger: opts.trigger,
      scheduleId: run.schedule_id,
      parentId: run.parent_id,
      ...(s ? { timeoutSeconds: s.expire_seconds, retryLimit: s.retry_limit, retryDelaySeconds: s.retry_delay, retryBackoff: s.retry_backoff, priority: s.priority } : {}),
    });
    await trx.updateTable('wombat.runs').set({ retry_of: id }).where('id', '=', newId).execute();
    await trx.updateTable('wombat.runs').set({ requeued_as: newId, updated_at: sql<never>`now()` }).where('id', '=', id).execute();
    return newId;
  });
}

/** Ids of dead letters matching a filter, oldest first, at most `limit`. */
export async function deadLetterIds(db: ApiDb, f: { job?: string | undefined; ids?: string[] | undefined; limit: number }): Promise<string[]> {
  let q = db.selectFrom('wombat.runs').select('id').where('state', '=', 'failed').where('requeued_as', 'is', null);
  if (f.job !== undefined) q = q.where('job', '=', f.job);
  if (f.ids !== undefined) q = q.where('id', 'in', f.ids);
  const rows = await q.orderBy('finished_at', 'asc').limit(f.limit).execute();
  return rows.map((r) => r.id);
}

/** Deletes dead letters that finished before `before`; returns how many. */
export async function purgeDeadLetters(db: ApiDb, before: Date, job?: string): Promise<number> {
  let q = db.deleteFrom('wombat.runs').where('state', '=', 'failed').where('requeued_as', 'is', null).where('finished_at', '<', before);
  if (job !== undefined) q = q.where('job', '=', job);
  const res = await q.executeTakeFirst();
  return Number(res.numDeletedRows);
}
