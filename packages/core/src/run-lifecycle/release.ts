import { sql, type Kysely } from 'kysely';
import { fromKysely, type PgBoss } from 'pg-boss';
import type { CoreTables } from '../db-types.ts';
import { jobDefaults, type JobType } from '../jobs.ts';
import { getSchedule } from '../schedule/store.ts';
import { jobInsertForSchedule } from './record.ts';

/**
 * release: held -> queued. A run held by overlap queue-one gets its job once no
 * other run of its schedule is queued, running or retrying (a failed attempt
 * whose retry is pending still counts, and so does a run whose worker died
 * until the reconciler ends it), so two runs of the schedule never execute at
 * once. Row locks (skip locked) let several engines do this at once without
 * sending a held run twice. Returns the released runs.
 */
export async function releaseHeldRuns(db: Kysely<CoreTables>, boss: PgBoss, limit = 100): Promise<{ id: string; scheduleId: number }[]> {
  return db.transaction().execute(async (trx) => {
    const held = await sql<{ id: string; job: string; params: object; schedule_id: number }>`
      select r.id, r.job, r.params, r.schedule_id from wombat.runs r
      where r.state = 'held'
        and not exists (select 1 from wombat.runs o
                        where o.schedule_id = r.schedule_id and o.state in ('queued', 'running', 'retrying'))
      order by r.scheduled_for
      limit ${limit}
      for update of r skip locked`.execute(trx);
    if (held.rows.length === 0) return [];
    const conn = { db: fromKysely(trx) };
    for (const r of held.rows) {
      const s = await getSchedule(trx, r.schedule_id);
      const job = r.job as JobType;
      const d = jobDefaults[job];
      const opts = s ?? { job, params: r.params, timeoutSeconds: d.timeoutSeconds, maxRetries: d.retryLimit, retryDelaySeconds: d.retryDelaySeconds, retryBackoff: d.retryBackoff };
      await boss.insert(job, [{ ...jobInsertForSchedule(r.id, opts), data: r.params }], conn);
    }
    await trx
      .updateTable('wombat.runs')
      .set({ state: 'queued', published_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
      .where('id', 'in', held.rows.map((r) => r.id))
      .execute();
    return held.rows.map((r) => ({ id: r.id, scheduleId: r.schedule_id }));
  });
}
