import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import { fromKysely, type PgBoss } from 'pg-boss';
import { dependencyPeriod } from '../schedules/dependency-period.ts';
import { rowToSchedule } from '../schedules/store.ts';
import type { SchedulerTables } from '../schedules/tables.ts';
import type { Schedule } from '../schedules/types.ts';
import { jobInsertForSchedule } from './record.ts';
import type { DependencySkipReason } from './states.ts';
import type { RunTables } from './tables.ts';

export interface WaitingRunOutcome {
  id: string;
  scheduleId: number;
  /** The waiting run's schedule, when it still exists. */
  schedule?: string;
  scheduledFor: Date;
  /** queued: released with its job; held: released into overlap queue-one's hold; skipped: see reason. */
  state: 'queued' | 'held' | 'skipped';
  reason?: string;
  /** A skip because of a prerequisite: which code, and the prerequisite's name. */
  code?: DependencySkipReason;
  prerequisite?: string;
}

/** The reason recorded on a waiting run: what it waits for, shown with the run. */
export function waitingReason(s: Pick<Schedule, 'after' | 'waitForSeconds'>): string {
  return `waits for ${s.after.join(', ')} (after): their runs for the same period must complete first, for up to ${s.waitForSeconds}s`;
}

/** pending with none: the prerequisite has no run in the period at all (a backfill's child goes by it). */
type Verdict = { state: 'completed' } | { state: 'failed'; runId: string; ended: string } | { state: 'pending'; none?: true };

/** Requeue hops followed from a failed prerequisite run to the run that replaced it. */
const MAX_REQUEUE_HOPS = 10;

/**
 * Where a prerequisite stands for one period: the latest of its runs scheduled in
 * the period decides (fan-out children and unrun occurrences, skipped or missed,
 * are passed over, except a run skipped waiting for its own prerequisites: that
 * fails the chain; a backfill's children count, as the runs of their occurrences).
 * A failed run requeued is followed to its requeue.
 */
export async function prerequisiteVerdict(trx: Transaction<RunTables>, prerequisiteId: number, from: Date, to: Date): Promise<Verdict> {
  // Runs without a parent, and backfill children: one arm each, so each takes its own index.
  const arm = (which: RawBuilder<unknown>) => sql`(
    select id, state, requeued_as, scheduled_for, created_at from wombat.runs
    where schedule_id = ${prerequisiteId} and ${which}
      and (state not in ('skipped', 'missed') or starts_with(reason, 'dependency_'))
      and scheduled_for between ${from.toISOString()}::timestamptz and ${to.toISOString()}::timestamptz
    order by scheduled_for desc, created_at desc limit 1)`;
  const latest = await sql<{ id: string; state: string; requeued_as: string | null }>`
    select id, state, requeued_as from (${arm(sql`parent_id is null`)} union all ${arm(sql`trigger = 'backfill' and parent_id is not null`)}) r
    order by scheduled_for desc, created_at desc limit 1`.execute(trx);
  let run = latest.rows[0];
  for (let hop = 0; run && run.state === 'failed' && run.requeued_as && hop < MAX_REQUEUE_HOPS; hop++) {
    const next = await sql<{ id: string; state: string; requeued_as: string | null }>`
      select id, state, requeued_as from wombat.runs where id = ${run.requeued_as}`.execute(trx);
    run = next.rows[0] ?? run;
    if (!next.rows[0]) break;
  }
  if (!run) return { state: 'pending', none: true };
  if (run.state === 'completed') return { state: 'completed' };
  // A prerequisite skipped for want of its own prerequisites fails the chain at once.
  if (run.state === 'failed' || run.state === 'cancelled' || run.state === 'skipped') return { state: 'failed', runId: run.id, ended: run.state };
  return { state: 'pending' };
}

/**
 * release for dependencies: waiting -> queued (or held, when overlap queue-one
 * finds another run of its schedule unfinished), or waiting -> skipped. A waiting
 * run is released once every prerequisite's run for its period (dependencyPeriod)
 * has completed; a prerequisite whose run failed for good (failed and not
 * requeued, or cancelled) ends it `skipped` with reason dependency_failed; past
 * its occurrence plus wait_for it ends `skipped` with dependency_timeout. A
 * prerequisite that is itself waiting, held, queued, running or retrying, or has
 * no run for the period yet, keeps it waiting. Completion is judged before the
 * window, so a prerequisite that completed while no engine ran releases the run
 * when one returns, however late.
 *
 * As releaseHeldRuns: the schedule decides as it is now (paused or deleted: the
 * run ends skipped; edited: the current definition runs), schedules are read FOR
 * SHARE, and waiting rows are locked skip locked, so several engines release each
 * run once. `now` is the engine's clock, for the window.
 */
export async function releaseWaitingRuns(db: Kysely<RunTables>, boss: PgBoss, now: Date, pageSize = 100): Promise<WaitingRunOutcome[]> {
  const out: WaitingRunOutcome[] = [];
  // Page after page (a transaction each), so that runs still waiting at the front never hide later ones.
  let after: Cursor | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const r = await releasePage(db, boss, now, pageSize, after);
    out.push(...r.outcomes);
    if (!r.last) break;
    after = r.last;
  }
  return out;
}

/** Waiting runs looked at per call: MAX_PAGES pages; the rest wait for the next round. */
const MAX_PAGES = 50;

interface Cursor {
  scheduledFor: Date;
  id: string;
}

async function releasePage(
  db: Kysely<RunTables>,
  boss: PgBoss,
  now: Date,
  limit: number,
  after: Cursor | undefined,
): Promise<{ outcomes: WaitingRunOutcome[]; last?: Cursor }> {
  return db.transaction().execute(async (trx) => {
    const from = after ? sql`and (scheduled_for, id) > (${after.scheduledFor.toISOString()}::timestamptz, ${after.id}::uuid)` : sql``;
    const waiting = await sql<{ id: string; schedule_id: number; scheduled_for: Date }>`
      select id, schedule_id, scheduled_for from wombat.runs where state = 'waiting' ${from}
      order by scheduled_for, id limit ${limit} for update skip locked`.execute(trx);
    if (waiting.rows.length === 0) return { outcomes: [] };
    const tail = waiting.rows.at(-1)!;
    const last = waiting.rows.length === limit ? { scheduledFor: new Date(tail.scheduled_for), id: tail.id } : undefined;
    const ids = [...new Set(waiting.rows.map((r) => Number(r.schedule_id)))];
    const tables = trx.withTables<SchedulerTables>();
    const own = await tables.selectFrom('wombat.schedules').selectAll().where('id', 'in', ids).forShare().execute();
    const schedules = new Map(own.map((r) => [Number(r.id), rowToSchedule(r)]));
    const names = [...new Set([...schedules.values()].flatMap((s) => s.after))];
    const prerequisites = new Map(
      (names.length > 0 ? await tables.selectFrom('wombat.schedules').selectAll().where('name', 'in', names).execute() : []).map((r) => [r.name, rowToSchedule(r)]),
    );
    const out: WaitingRunOutcome[] = [];
    const end = async (r: (typeof waiting.rows)[number], o: Omit<WaitingRunOutcome, 'id' | 'scheduleId' | 'scheduledFor'>) => {
      await trx
        .updateTable('wombat.runs')
        .set({ state: 'skipped', reason: o.reason ?? null, finished_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
        .where('id', '=', r.id)
        .execute();
      out.push({ id: r.id, scheduleId: Number(r.schedule_id), scheduledFor: new Date(r.scheduled_for), ...o });
    };
    for (const r of waiting.rows) {
      const s = schedules.get(Number(r.schedule_id));
      if (!s || s.status !== 'active') {
        await end(r, { ...(s ? { schedule: s.name } : {}), state: 'skipped', reason: `schedule ${s ? 'paused' : 'deleted'} while the run waited for its prerequisites` });
        continue;
      }
      const at = new Date(r.scheduled_for);
      const pending: string[] = [];
      let failed: { name: string; verdict: Extract<Verdict, { state: 'failed' }> } | undefined;
      for (const name of s.after) {
        const p = prerequisites.get(name);
        if (!p) {
          failed = { name, verdict: { state: 'failed', runId: '', ended: 'deleted' } };
          break;
        }
        const period = dependencyPeriod(s, p, at);
        const verdict = period ? await prerequisiteVerdict(trx, p.id, period.from, period.to) : { state: 'pending' as const };
        if (verdict.state === 'failed') {
          failed = { name, verdict };
          break;
        }
        if (verdict.state === 'pending') pending.push(name);
      }
      if (failed) {
        const how = failed.verdict.ended === 'deleted' ? 'no longer exists' : `ended ${failed.verdict.ended} for this period (run ${failed.verdict.runId})`;
        await end(r, { schedule: s.name, state: 'skipped', code: 'dependency_failed', prerequisite: failed.name, reason: `dependency_failed: ${s.name} waits for ${failed.name}, which ${how}` });
        continue;
      }
      if (pending.length > 0) {
        if (now.getTime() >= at.getTime() + s.waitForSeconds * 1000) {
          const reason = `dependency_timeout: ${s.name} waited ${s.waitForSeconds}s (wait_for) for ${pending.join(', ')} to complete a run for this period`;
          await end(r, { schedule: s.name, state: 'skipped', code: 'dependency_timeout', prerequisite: pending.join(', '), reason });
        }
        continue;
      }
      out.push(await release(trx, boss, r.id, s, at));
    }
    return { outcomes: out, ...(last ? { last } : {}) };
  });
}

/** The reason left on a waiting run released by `wombat trigger --force`. */
export const FORCED_RELEASE_REASON = 'released by trigger --force before its prerequisites completed';

/**
 * release by the operator (`trigger --force`): the schedule's latest waiting run, if
 * it has one, is released now whatever its prerequisites say, instead of a second
 * run being created beside it. Its row is locked (waiting for an engine's release
 * pass, then re-read), so it is released once. Undefined when none is waiting.
 */
export async function releaseWaitingRunNow(db: Kysely<RunTables>, boss: PgBoss, s: Schedule): Promise<WaitingRunOutcome | undefined> {
  return db.transaction().execute(async (trx) => {
    const row = await sql<{ id: string; scheduled_for: Date }>`
      select id, scheduled_for from wombat.runs where schedule_id = ${s.id} and state = 'waiting'
      order by scheduled_for desc limit 1 for update`.execute(trx);
    const r = row.rows[0];
    if (!r) return undefined;
    return release(trx, boss, r.id, s, new Date(r.scheduled_for), FORCED_RELEASE_REASON);
  });
}

/** Queued with its job, or held when overlap queue-one finds another run of the schedule unfinished. */
async function release(trx: Transaction<RunTables>, boss: PgBoss, id: string, s: Schedule, at: Date, why: string | null = null): Promise<WaitingRunOutcome> {
  const base = { id, scheduleId: s.id, schedule: s.name, scheduledFor: at };
  if (s.overlap === 'queue-one') {
    const busy = await sql<{ n: number }>`
      select count(*)::int as n from wombat.runs where schedule_id = ${s.id} and id <> ${id} and state in ('queued', 'running', 'retrying')`.execute(trx);
    if ((busy.rows[0]?.n ?? 0) > 0) {
      const reason = 'overlap queue-one: waits for the running (or retrying) run of its schedule to end';
      await trx.updateTable('wombat.runs').set({ state: 'held', reason, updated_at: sql<Date>`now()` }).where('id', '=', id).execute();
      return { ...base, state: 'held', reason };
    }
  }
  await boss.insert(s.job, [jobInsertForSchedule(id, s)], { db: fromKysely(trx) });
  await trx
    .updateTable('wombat.runs')
    // The statement's time, not the transaction's start: the prerequisites it saw complete may
    // have committed after this transaction began.
    .set({ state: 'queued', job: s.job, params: s.params, reason: why, published_at: sql<Date>`clock_timestamp()`, updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .execute();
  return { ...base, state: 'queued' };
}
