import { type Kysely, type SelectQueryBuilder, type Selectable } from 'kysely';
import { AppError } from '@wombat/core/platform';
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
  /** Keyset paging: the page starts after this run, in the list's order (offset is then 0). */
  startingAfter?: string | undefined;
}

/** A page of runs and where the next one starts (the id to pass as starting_after; null: none). */
export interface RunPage {
  runs: ApiRun[];
  total: number;
  hasMore: boolean;
  nextStartingAfter: string | null;
}

type RunsQuery = SelectQueryBuilder<CoreTables, 'wombat.runs', object>;

/**
 * Resumes a newest-first list after the run `id`: rows before it in (key desc, id desc). Written
 * as `key <= k and (key < k or id < id)` so the list's index on `key` bounds the scan, whatever
 * page it is: a deep page costs what the first one does, unlike an offset.
 */
async function resumeAfter(db: ApiDb, q: RunsQuery, key: 'created_at' | 'finished_at', id: string | undefined): Promise<RunsQuery> {
  if (id === undefined) return q;
  const at = await db.selectFrom('wombat.runs').select(key).where('id', '=', id).executeTakeFirst();
  if (!at || at[key] === null) {
    throw new AppError('invalid_cursor', `starting_after names run ${id}, which ${at ? 'has not finished' : 'no longer exists'}; list again from the first page`);
  }
  const k = db.selectFrom('wombat.runs as c').select(`c.${key}`).where('c.id', '=', id);
  return q.where((eb) => eb.and([eb(key, '<=', k), eb.or([eb(key, '<', k), eb('id', '<', id)])]));
}

/** Fetches one row past the page: whether there is a next page, without counting. */
async function page(q: RunsQuery, key: 'created_at' | 'finished_at', f: { limit: number; offset: number }): Promise<Omit<RunPage, 'total'>> {
  const rows = await q.selectAll().orderBy(key, 'desc').orderBy('id', 'desc').limit(f.limit + 1).offset(f.offset).execute();
  const hasMore = rows.length > f.limit;
  const runs = hasMore ? rows.slice(0, f.limit) : rows;
  return { runs, hasMore, nextStartingAfter: hasMore ? runs.at(-1)!.id : null };
}

/**
 * Runs newest first, filtered and paged; `total` counts every match. Each filter has an
 * index in the order of the page (runs_created, runs_job_created, runs_schedule_created),
 * so a page stops after its rows; a total of all runs or of a job and/or state comes from
 * the run roll-ups' current counts, other totals count the matches.
 */
export async function listRuns(db: ApiDb, f: RunFilter): Promise<RunPage> {
  const rolledUp = f.scheduleId === undefined && f.trigger === undefined && f.since === undefined && f.until === undefined;
  let q = db.selectFrom('wombat.runs');
  if (f.scheduleId !== undefined) q = q.where('schedule_id', '=', f.scheduleId);
  if (f.job !== undefined) q = q.where('job', '=', f.job);
  if (f.state !== undefined) q = q.where('state', '=', f.state);
  if (f.trigger !== undefined) q = q.where('trigger', '=', f.trigger);
  if (f.since !== undefined) q = q.where('created_at', '>=', f.since as never);
  if (f.until !== undefined) q = q.where('created_at', '<', f.until as never);
  const [rows, total] = await Promise.all([
    resumeAfter(db, q, 'created_at', f.startingAfter).then((p) => page(p, 'created_at', f)),
    rolledUp ? countRuns(db, { job: f.job, state: f.state }) : q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow().then((c) => Number(c.n)),
  ]);
  return { ...rows, total };
}

export interface DeadLetterFilter {
  job?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  limit: number;
  offset: number;
  startingAfter?: string | undefined;
}

/**
 * Dead letters: runs whose final attempt failed and that nobody requeued yet, newest
 * first (index runs_dead_letters); the total of all or of a job comes from the run roll-ups.
 */
export async function listDeadLetters(db: ApiDb, f: DeadLetterFilter): Promise<RunPage> {
  const rolledUp = f.since === undefined && f.until === undefined;
  let q = db.selectFrom('wombat.runs').where('state', '=', 'failed').where('requeued_as', 'is', null);
  if (f.job !== undefined) q = q.where('job', '=', f.job);
  if (f.since !== undefined) q = q.where('finished_at', '>=', f.since);
  if (f.until !== undefined) q = q.where('finished_at', '<', f.until);
  const [rows, total] = await Promise.all([
    resumeAfter(db, q, 'finished_at', f.startingAfter).then((p) => page(p, 'finished_at', f)),
    rolledUp ? countRuns(db, { job: f.job, deadLetters: true }) : q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow().then((c) => Number(c.n)),
  ]);
  return { ...rows, total };
}

/** Ids of dead letters matching a filter, oldest first, at most `limit`. */
export async function deadLetterIds(db: ApiDb, f: { job?: string | undefined; ids?: string[] | undefined; limit: number }): Promise<string[]> {
  let q = db.selectFrom('wombat.runs').select('id').where('state', '=', 'failed').where('requeued_as', 'is', null);
  if (f.job !== undefined) q = q.where('job', '=', f.job);
  if (f.ids !== undefined) q = q.where('id', 'in', f.ids);
  const rows = await q.orderBy('finished_at', 'asc').limit(f.limit).execute();
  return rows.map((r) => r.id);
}
