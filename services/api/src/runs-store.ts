import type { Kysely, Selectable } from 'kysely';
import { ACTIVE_RUN_STATES, countRuns, type RunsTable, type RunState, type RunTrigger } from '@wombat/core/runs';
import type { CoreTables } from '@wombat/core/tables';

/**
 * The api's reads of wombat.runs. Every write (cancel, requeue, purge) is a
 * transition of the core run lifecycle.
 */
export type ApiDb = Kysely<CoreTables>;
export type ApiRun = Selectable<RunsTable>;

export function apiDb(db: Kysely<CoreTables>): ApiDb {
  return db;
}

export async function getRun(db: ApiDb, id: string): Promise<ApiRun | undefined> {
  return db.selectFrom('wombat.runs').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The child runs of a fan-out by state; a failed child requeued since counts as its new run only. */
export interface ChildTally {
  total: number;
  /** Children not finished yet (held, queued, running, retrying). */
  active: number;
  by_state: Partial<Record<RunState, number>>;
}

export async function childTally(db: ApiDb, parentId: string): Promise<ChildTally | null> {
  const rows = await db
    .selectFrom('wombat.runs')
    .select(['state', (eb) => eb.fn.countAll<string>().as('n')])
    .where('parent_id', '=', parentId)
    .where('requeued_as', 'is', null)
    .groupBy('state')
    .execute();
  if (rows.length === 0) return null;
  const byState: Partial<Record<RunState, number>> = {};
  for (const r of rows) byState[r.state] = Number(r.n);
  const total = rows.reduce((sum, r) => sum + Number(r.n), 0);
  const active = (ACTIVE_RUN_STATES as readonly RunState[]).reduce((sum, s) => sum + (byState[s] ?? 0), 0);
  return { total, active, by_state: byState };
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

/**
 * Runs newest first, filtered and paged; `total` counts every match. Each filter has an
 * index in the order of the page (runs_created, runs_job_created, runs_schedule_created),
 * so a page stops after its rows; a total of all runs or of a job and/or state comes from
 * the run roll-ups' current counts, other totals count the matches.
 */
export async function listRuns(db: ApiDb, f: RunFilter): Promise<{ runs: ApiRun[]; total: number }> {
  const rolledUp = f.scheduleId === undefined && f.trigger === undefined && f.since === undefined && f.until === undefined;
  let q = db.selectFrom('wombat.runs');
  if (f.scheduleId !== undefined) q = q.where('schedule_id', '=', f.scheduleId);
  if (f.job !== undefined) q = q.where('job', '=', f.job);
  if (f.state !== undefined) q = q.where('state', '=', f.state);
  if (f.trigger !== undefined) q = q.where('trigger', '=', f.trigger);
  if (f.since !== undefined) q = q.where('created_at', '>=', f.since as never);
  if (f.until !== undefined) q = q.where('created_at', '<', f.until as never);
  const [runs, count] = await Promise.all([
    q.selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(f.limit).offset(f.offset).execute(),
    rolledUp ? countRuns(db, { job: f.job, state: f.state }) : q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow().then((c) => Number(c.n)),
  ]);
  return { runs, total: count };
}

export interface DeadLetterFilter {
  job?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  limit: number;
  offset: number;
}

/**
 * Dead letters: runs whose final attempt failed and that nobody requeued yet, newest
 * first (index runs_dead_letters); the total of all or of a job comes from the run roll-ups.
 */
export async function listDeadLetters(db: ApiDb, f: DeadLetterFilter): Promise<{ runs: ApiRun[]; total: number }> {
  const rolledUp = f.since === undefined && f.until === undefined;
  let q = db.selectFrom('wombat.runs').where('state', '=', 'failed').where('requeued_as', 'is', null);
  if (f.job !== undefined) q = q.where('job', '=', f.job);
  if (f.since !== undefined) q = q.where('finished_at', '>=', f.since);
  if (f.until !== undefined) q = q.where('finished_at', '<', f.until);
  const [runs, count] = await Promise.all([
    q.selectAll().orderBy('finished_at', 'desc').orderBy('id', 'desc').limit(f.limit).offset(f.offset).execute(),
    rolledUp ? countRuns(db, { job: f.job, deadLetters: true }) : q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow().then((c) => Number(c.n)),
  ]);
  return { runs, total: count };
}

/** Ids of dead letters matching a filter, oldest first, at most `limit`. */
export async function deadLetterIds(db: ApiDb, f: { job?: string | undefined; ids?: string[] | undefined; limit: number }): Promise<string[]> {
  let q = db.selectFrom('wombat.runs').select('id').where('state', '=', 'failed').where('requeued_as', 'is', null);
  if (f.job !== undefined) q = q.where('job', '=', f.job);
  if (f.ids !== undefined) q = q.where('id', 'in', f.ids);
  const rows = await q.orderBy('finished_at', 'asc').limit(f.limit).execute();
  return rows.map((r) => r.id);
}
