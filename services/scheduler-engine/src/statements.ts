import { sql, type Kysely, type Transaction } from 'kysely';
import { ACTIVE_RUN_STATES } from '@wombat/core/runs';
import type { CoreTables } from '@wombat/core/tables';

/**
 * The engine's own SQL: reads of runs and schedules, and its lock; one function per
 * statement, database handle first. What it writes goes through core: runs through
 * the run lifecycle, the schedules' next/last bookkeeping and the engines' heartbeat
 * rows through @wombat/core/schedules. Batches travel as one JSON parameter
 * (jsonb_to_recordset), so a batch of any size is one round trip.
 */
type Db = Kysely<CoreTables> | Transaction<CoreTables>;

/**
 * Unfinished runs per schedule, for the overlap policy: waiting (held, or queued
 * with its job not yet fetched) and busy (running, or retrying: an attempt
 * failed and pg-boss will run it again). The reconciler ends runs whose worker
 * died, so these counts are runs that are really unfinished.
 */
export async function countActiveRuns(db: Db, scheduleIds: number[]): Promise<Map<number, ActiveCounts>> {
  const out = new Map<number, ActiveCounts>();
  if (scheduleIds.length === 0) return out;
  const rows = await db
    .selectFrom('wombat.runs')
    .select([
      'schedule_id',
      sql<number>`count(*) filter (where state in ('waiting', 'held', 'queued'))::int`.as('waiting'),
      sql<number>`count(*) filter (where state in ('running', 'retrying'))::int`.as('busy'),
    ])
    .where('schedule_id', 'in', scheduleIds)
    .where('state', 'in', [...ACTIVE_RUN_STATES])
    .groupBy('schedule_id')
    .execute();
  for (const r of rows) out.set(r.schedule_id!, { waiting: r.waiting, busy: r.busy });
  return out;
}

export interface ActiveCounts {
  waiting: number;
  busy: number;
}

/**
 * The schedules' current version and status, locked (FOR SHARE) until the
 * publishing transaction commits: an edit, pause or delete committed first is
 * seen here, and one committed later waits for this commit, so a batch publishes
 * only from definitions that are active when it commits.
 */
export async function lockScheduleVersions(db: Db, scheduleIds: number[]): Promise<Map<number, { version: number; status: string; updatedAt: Date }>> {
  const out = new Map<number, { version: number; status: string; updatedAt: Date }>();
  if (scheduleIds.length === 0) return out;
  const rows = await sql<{ id: number; version: number; status: string; updated_at: Date }>`
    select id, version, status, updated_at from wombat.schedules where id = any(${`{${scheduleIds.join(',')}}`}::bigint[]) order by id for share`.execute(db);
  for (const r of rows.rows) out.set(Number(r.id), { version: r.version, status: r.status, updatedAt: new Date(r.updated_at) });
  return out;
}

/** True when this transaction holds the lock; released at commit. */
export async function tryXactLock(db: Db, key: string): Promise<boolean> {
  const result = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(hashtext(${key})) as locked`.execute(db);
  return result.rows[0]?.locked === true;
}
