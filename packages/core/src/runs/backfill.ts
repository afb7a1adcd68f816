import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { fromKysely, type PgBoss } from 'pg-boss';
import { CANCEL_CHANNEL, isJobType } from '../jobs/contracts.ts';
import { AppError } from '../platform/errors.ts';
import type { SchedulerTables } from '../schedules/tables.ts';
import type { Schedule } from '../schedules/types.ts';
import { backfillOptions, type BackfillOccurrence, type BackfillOptions, type BackfillRequest } from './backfill-plan.ts';
import { planBackfillScope } from './backfill-prerequisites.ts';
import { releaseBackfillChildren } from './backfill-release.ts';
import type { RunTables } from './tables.ts';

/**
 * Backfills: a parent run (trigger backfill, its schedule's id, no job and no
 * scheduled_for of its own) with one child run per occurrence (trigger backfill,
 * parent_id, the occurrence's schedule's id, scheduled_for = the occurrence, params
 * with its period) of the schedule and of its prerequisites (backfill-prerequisites.ts).
 * Children are recorded held ("waits for a backfill slot") and released by
 * releaseBackfills (backfill-release.ts: a child once its prerequisites' runs for its
 * period completed), at most `concurrency` of a parent queued, running or retrying at
 * once. The parent's row is the lock: every release and resume of a backfill runs
 * under it (FOR UPDATE, skip locked), so several engines release each child once and
 * a restart loses nothing (the state is all in the rows).
 *
 * The parent is running while it releases, held when paused after a failure
 * (pause_on_failure: resume with resumeBackfill, or cancel it), and ends completed
 * when every child completed, failed when any child failed or was cancelled.
 * Cancelling it (cancelRun) cancels the children not yet finished.
 */

/** What a backfill parent's params hold: how it was asked for. */
export interface BackfillSettings {
  from: string;
  to: string;
  concurrency: number;
  rerun: boolean;
  pause_on_failure: boolean;
  /** Occurrences in the range (of every schedule covered), and those skipped because they had completed already. */
  occurrences: number;
  skipped: number;
  /** The schedules covered: its prerequisites in dependency order, then the schedule. */
  schedules?: string[];
  /** Failed children seen when the operator last resumed: pause_on_failure pauses on more. */
  acknowledged_failures?: number;
}

export const BACKFILL_SLOT_REASON = 'waits for a backfill slot';

type BackfillTables = RunTables & SchedulerTables;

/**
 * record: the parent and its children (held), then the first `concurrency` children
 * released, in one transaction. Returns the parent's id. AppError nothing_to_backfill
 * when every occurrence is skipped.
 */
async function startBackfill(db: Kysely<BackfillTables>, boss: PgBoss, s: Schedule, o: BackfillOptions, plan: BackfillOccurrence[], schedules: string[]): Promise<string> {
  const runs = plan.filter((p) => p.action === 'run');
  if (runs.length === 0) {
    throw new AppError(
      'nothing_to_backfill',
      plan.length === 0
        ? 'the range holds no occurrence of the schedule'
        : plan.some((p) => p.existing === 'in_progress')
        ? `none of the ${plan.length} occurrences in the range is left to run: ${plan.filter((p) => p.existing === 'in_progress').length} are in progress (wait for them), the rest completed already (rerun those with --rerun, rerun: true)`
        : `all ${plan.length} occurrences in the range completed already: rerun them with --rerun (rerun: true)`,
    );
  }
  const settings: BackfillSettings = {
    from: o.from.toISOString(),
    to: o.to.toISOString(),
    concurrency: o.concurrency,
    rerun: o.rerun,
    pause_on_failure: o.pauseOnFailure,
    occurrences: plan.length,
    skipped: plan.length - runs.length,
    schedules,
  };
  const id = randomUUID();
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('wombat.runs')
      .values({
        id,
        job: s.job,
        trigger: 'backfill',
        schedule_id: s.id,
        scheduled_for: null,
        state: 'running',
        params: { backfill: settings },
        progress_message: `0/${runs.length} done`,
        published_at: sql<Date>`now()`,
        started_at: sql<Date>`now()`,
      })
      .execute();
    // An occurrence another backfill's unfinished child holds (runs_backfill_occurrence_active)
    // is left to it: counted as skipped, not run twice.
    let recorded = 0;
    for (let i = 0; i < runs.length; i += 1000) {
      const inserted = await trx
        .insertInto('wombat.runs')
        .values(
          runs.slice(i, i + 1000).map((p) => ({
            id: randomUUID(),
            job: p.job,
            trigger: 'backfill' as const,
            schedule_id: p.schedule_id,
            parent_id: id,
            scheduled_for: p.scheduled_for,
            state: 'held' as const,
            reason: `${BACKFILL_SLOT_REASON} (concurrency ${o.concurrency})`,
            params: p.params,
          })),
        )
        .onConflict((oc) => oc.doNothing())
        .returning('id')
        .execute();
      recorded += inserted.length;
    }
    if (recorded === 0) {
      throw new AppError('nothing_to_backfill', `every occurrence to run in the range is in progress in another backfill: wait for it, or cancel it first`);
    }
    if (recorded < runs.length) {
      settings.skipped += runs.length - recorded;
      await trx.updateTable('wombat.runs').set({ params: { backfill: settings }, progress_message: `0/${recorded} done` }).where('id', '=', id).execute();
    }
    await advanceBackfill(trx, boss, { id, params: { backfill: settings } });
  });
  return id;
}

export interface BackfillOutcome {
  id: string;
  released: string[];
  /** running: still going; held: paused after a failure; completed | failed: ended. */
  state: 'running' | 'held' | 'completed' | 'failed';
  /** This call paused it (pause on failure). */
  paused?: boolean;
}

/**
 * release, for backfills: every running parent (up to `limit`) gets children released into
 * its free slots, its progress, and its end once no child is left. Parents are locked FOR
 * UPDATE SKIP LOCKED: another engine's pass takes the others.
 */
export async function releaseBackfills(db: Kysely<BackfillTables>, boss: PgBoss, limit = 20): Promise<BackfillOutcome[]> {
  return db.transaction().execute(async (trx) => {
    const parents = await sql<{ id: string; state: string; params: { backfill: BackfillSettings } }>`
      select id, state, params from wombat.runs
      where trigger = 'backfill' and parent_id is null and state in ('running', 'held')
      order by created_at
      limit ${limit}
      for update skip locked`.execute(trx);
    const out: BackfillOutcome[] = [];
    for (const p of parents.rows) out.push(await advanceBackfill(trx, boss, p));
    return out;
  });
}

interface Tally {
  held: number;
  active: number;
  completed: number;
  failed: number;
  cancelled: number;
  /** Children that never ran: skipped, their prerequisite's run for the period having failed. */
  skipped: number;
  total: number;
}

async function tally(trx: Transaction<BackfillTables>, parentId: string): Promise<Tally> {
  const r = await sql<Tally>`
    select count(*) filter (where state = 'held')::int as held,
           count(*) filter (where state in ('queued', 'running', 'retrying'))::int as active,
           count(*) filter (where state = 'completed')::int as completed,
           count(*) filter (where state in ('failed', 'missed'))::int as failed,
           count(*) filter (where state = 'cancelled')::int as cancelled,
           count(*) filter (where state = 'skipped')::int as skipped,
           count(*)::int as total
    from wombat.runs where parent_id = ${parentId}`.execute(trx);
  return r.rows[0]!;
}

/** One parent, locked by the caller: pause, release into free slots, progress, end. */
async function advanceBackfill(trx: Transaction<BackfillTables>, boss: PgBoss, parent: { id: string; state?: string; params: { backfill: BackfillSettings } }): Promise<BackfillOutcome> {
  const b = parent.params.backfill;
  let t = await tally(trx, parent.id);
  const released: string[] = [];
  const done = (x: Tally) => x.completed + x.failed + x.cancelled + x.skipped;
  const progress = (x: Tally) => ({
    progress: x.total === 0 ? 1 : done(x) / x.total,
    progress_message: `${done(x)}/${x.total} done, ${x.failed} failed, ${x.skipped > 0 ? `${x.skipped} skipped (a prerequisite failed), ` : ''}${x.active} active, ${x.held} waiting`,
    updated_at: sql<Date>`now()`,
  });
  if (parent.state === 'held') {
    // Paused: the children already out still finish, and the progress says so.
    await trx.updateTable('wombat.runs').set(progress(t)).where('id', '=', parent.id).where('progress_message', 'is distinct from', progress(t).progress_message).execute();
    return { id: parent.id, released, state: 'held' };
  }
  if (b.pause_on_failure && t.failed > (b.acknowledged_failures ?? 0) && t.held > 0) {
    const reason = `paused: a child run failed (pause on failure); resume with wombat backfill-resume ${parent.id} or cancel with wombat cancel ${parent.id}`;
    await trx.updateTable('wombat.runs').set({ state: 'held', reason, ...progress(t) }).where('id', '=', parent.id).execute();
    return { id: parent.id, released, state: 'held', paused: true };
  }
  const slots = Math.min(b.concurrency - t.active, t.held);
  if (slots > 0) {
    released.push(...(await releaseBackfillChildren(trx, boss, parent.id, slots)));
    // Recounted: besides those released, children may have ended skipped (dependency_failed).
    t = await tally(trx, parent.id);
  }
  if (t.held === 0 && t.active === 0) {
    const ok = t.failed === 0 && t.cancelled === 0 && t.skipped === 0;
    const error = ok ? null : { code: 'backfill_failed', message: `${t.failed} of ${t.total} occurrences failed, ${t.cancelled} cancelled, ${t.skipped} skipped (a prerequisite failed)` };
    await trx
      .updateTable('wombat.runs')
      .set({ state: ok ? 'completed' : 'failed', reason: null, error, finished_at: sql<Date>`now()`, ...progress(t) })
      .where('id', '=', parent.id)
      .execute();
    return { id: parent.id, released, state: ok ? 'completed' : 'failed' };
  }
  await trx.updateTable('wombat.runs').set(progress(t)).where('id', '=', parent.id).execute();
  return { id: parent.id, released, state: 'running' };
}

/**
 * resume: a backfill paused after a failure (held) runs again; the failures seen so far
 * no longer pause it. Its failed children stay failed (requeue them as dead letters).
 */
export async function resumeBackfill(db: Kysely<BackfillTables>, boss: PgBoss, id: string): Promise<BackfillOutcome> {
  return db.transaction().execute(async (trx) => {
    const run = await trx.selectFrom('wombat.runs').select(['state', 'trigger', 'parent_id', 'params']).where('id', '=', id).forUpdate().executeTakeFirst();
    if (!run) throw new AppError('run_not_found', `no run with id ${id}`);
    if (run.trigger !== 'backfill' || run.parent_id !== null) throw new AppError('not_a_backfill', `run ${id} is not a backfill (trigger ${run.trigger}${run.parent_id ? `, a child of ${run.parent_id}` : ''})`);
    if (run.state !== 'held') throw new AppError('backfill_not_paused', `backfill ${id} is ${run.state}, not paused: only a backfill paused after a failure can be resumed`);
    const b = (run.params as { backfill: BackfillSettings }).backfill;
    const settings: BackfillSettings = { ...b, acknowledged_failures: (await tally(trx, id)).failed };
    await trx.updateTable('wombat.runs').set({ state: 'running', reason: null, params: { backfill: settings }, updated_at: sql<Date>`now()` }).where('id', '=', id).execute();
    return advanceBackfill(trx, boss, { id, params: { backfill: settings } });
  });
}

/**
 * cancel, for a backfill parent's children, in the caller's transaction (cancelRun of the
 * parent): every child not finished is cancelled, its job too, and its worker is told.
 */
export async function cancelChildRuns(trx: Transaction<RunTables>, boss: PgBoss, parentId: string): Promise<number> {
  const children = await trx
    .selectFrom('wombat.runs')
    .select(['id', 'job', 'state'])
    .where('parent_id', '=', parentId)
    .where('state', 'in', ['held', 'queued', 'running', 'retrying'])
    .orderBy('id')
    .forUpdate()
    .execute();
  if (children.length === 0) return 0;
  const conn = { db: fromKysely(trx) };
  const byJob = new Map<string, string[]>();
  for (const c of children) if (c.state !== 'held' && isJobType(c.job)) byJob.set(c.job, [...(byJob.get(c.job) ?? []), c.id]);
  for (const [job, ids] of byJob) await boss.cancel(job, ids, conn);
  const ids = children.map((c) => c.id);
  await trx
    .updateTable('wombat.runs')
    .set({ state: 'cancelled', reason: `the backfill ${parentId} was cancelled`, finished_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
    .where('id', '=', sql<string>`any(${ids}::uuid[])`)
    .execute();
  await sql`select pg_notify(${CANCEL_CHANNEL}, id) from unnest(${ids}::text[]) id`.execute(trx);
  return ids.length;
}

export interface BackfillAnswer {
  plan: BackfillOccurrence[];
  options: BackfillOptions;
  /** What the operator should know about the job: a list that is as of now, whatever the period. */
  notes: string[];
  /** The parent run; absent on a dry run. */
  runId?: string;
}

/**
 * A backfill as the api and the CLI ask for it: the request checked against the schedule
 * (ValidationError, AppError backfill_too_large / backfill_unsupported), the plan, and unless
 * `dryRun` the parent and its children recorded. A dry run writes nothing.
 */
export async function backfillSchedule(db: Kysely<BackfillTables>, boss: PgBoss, s: Schedule, raw: BackfillRequest & { dryRun?: boolean | undefined }, now = new Date()): Promise<BackfillAnswer> {
  const options = backfillOptions(s, raw, now);
  const scope = await planBackfillScope(db, s, options);
  const plan = scope.plan;
  const notes = [...scope.notes, ...[...new Set(scope.schedules.map((x) => x.job))].flatMap((job) => (LISTS_AS_OF_NOW[job] ? [LISTS_AS_OF_NOW[job]] : []))];
  if (raw.dryRun) return { plan, options, notes };
  return { plan, options, notes, runId: await startBackfill(db, boss, s, options, plan, scope.schedules.map((x) => x.name)) };
}

const LISTS_AS_OF_NOW: Partial<Record<string, string>> = {
  'collect-symbols': 'collect-symbols records each period but fetches the symbol lists as they are now: the exchanges publish no past listings',
  'collect-prices': 'collect-prices collects each period\'s candles for the symbols listed now (the symbols table or the exchanges\' current lists), not those listed then',
};
