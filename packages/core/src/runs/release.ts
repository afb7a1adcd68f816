import { sql, type Kysely } from 'kysely';
import { fromKysely, type PgBoss } from 'pg-boss';
import { rowToSchedule } from '../schedules/store.ts';
import type { SchedulerTables } from '../schedules/tables.ts';
import { jobInsertForSchedule } from './record.ts';
import type { RunTables } from './tables.ts';

export interface HeldRunOutcome {
  id: string;
  scheduleId: number;
  /** queued: released with its job; skipped: its schedule was paused or deleted while it waited. */
  state: 'queued' | 'skipped';
  reason?: string;
}

/**
 * release: held -> queued, or held -> skipped. A run held by overlap queue-one
 * gets its job once no other run of its schedule is queued, running or retrying
 * (a failed attempt whose retry is pending still counts, and so does a run whose
 * worker died until the reconciler ends it), so two runs of the schedule never
 * execute at once.
 *
 * The schedule decides as it is now, not as it was when the run was held: a
 * held run of a paused or deleted schedule ends `skipped` with the reason (at
 * once, without waiting for the running one: paused occurrences do not run),
 * and one of an edited schedule runs the current definition (job, params,
 * timeout, retries), recorded on the run. The schedules are read FOR SHARE, so
 * an edit or pause waits for this transaction, as it waits for a publication.
 * Row locks (skip locked) let several engines do this at once without sending a
 * held run twice. A backfill's held runs are not overlap's: releaseBackfills releases them.
 */
export async function releaseHeldRuns(db: Kysely<RunTables>, boss: PgBoss, limit = 100): Promise<HeldRunOutcome[]> {
  return db.transaction().execute(async (trx) => {
    const held = await sql<{ id: string; schedule_id: number }>`
      select r.id, r.schedule_id from wombat.runs r
      where r.state = 'held' and r.trigger <> 'backfill'
        and (not exists (select 1 from wombat.schedules s where s.id = r.schedule_id and s.status = 'active')
             or not exists (select 1 from wombat.runs o
                            where o.schedule_id = r.schedule_id and o.state in ('queued', 'running', 'retrying')))
      order by r.scheduled_for
      limit ${limit}
      for update of r skip locked`.execute(trx);
    if (held.rows.length === 0) return [];
    const ids = [...new Set(held.rows.map((r) => r.schedule_id))];
    const rows = await trx.withTables<SchedulerTables>().selectFrom('wombat.schedules').selectAll().where('id', 'in', ids).forShare().execute();
    const schedules = new Map(rows.map((r) => [Number(r.id), rowToSchedule(r)]));
    const conn = { db: fromKysely(trx) };
    const out: HeldRunOutcome[] = [];
    for (const r of held.rows) {
      const s = schedules.get(Number(r.schedule_id));
      if (!s || s.status !== 'active') {
        const reason = !s ? 'schedule deleted while the run was held (overlap queue-one)' : 'schedule paused while the run was held (overlap queue-one)';
        await trx
          .updateTable('wombat.runs')
          .set({ state: 'skipped', reason, finished_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
          .where('id', '=', r.id)
          .execute();
        out.push({ id: r.id, scheduleId: r.schedule_id, state: 'skipped', reason });
        continue;
      }
      // The paused-or-gone check above ran on rows read FOR SHARE; the overlap check in the
      // select saw an active schedule, so this one is free to run.
      await boss.insert(s.job, [jobInsertForSchedule(r.id, s)], conn);
      await trx
        .updateTable('wombat.runs')
        .set({ state: 'queued', job: s.job, params: s.params, reason: null, published_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
        .where('id', '=', r.id)
        .execute();
      out.push({ id: r.id, scheduleId: r.schedule_id, state: 'queued' });
    }
    return out;
  });
}
