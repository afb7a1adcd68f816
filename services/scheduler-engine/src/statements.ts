import { sql, type Kysely, type Transaction } from 'kysely';
import { ACTIVE_RUN_STATES, type CoreTables, type SchedulerTables } from '@wombat/core';

/**
 * The engine's SQL (schedules and engines; runs are written by core's run
 * lifecycle), one function per statement, database handle first. Batches
 * travel as one JSON parameter (jsonb_to_recordset), so a batch of any size is
 * one round trip.
 */
type Db = Kysely<CoreTables> | Transaction<CoreTables>;

export interface LastRunRow {
  id: number;
  last_run_at: string;
  last_run_id: string;
  next_at: string | null;
  /** The schedule version the occurrence was planned with. */
  version: number;
}

/**
 * Advances each schedule's last/next occurrence (status bookkeeping, outside the
 * publishing transaction). Never moves last_run_at backwards, so engines writing
 * in any order agree; next_run_at only while the definition is the one planned
 * with (an edit or pause since has set its own); rows go in id order so that
 * concurrent writers lock alike.
 */
export async function recordLastRuns(db: Db, rows: LastRunRow[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`
    update wombat.schedules s
    set last_run_at = v.last_run_at, last_run_id = v.last_run_id,
        next_run_at = case when s.version = v.version then v.next_at else s.next_run_at end
    from (select * from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as x(
            id bigint, last_run_at timestamptz, last_run_id uuid, next_at timestamptz, version integer) order by id) v
    where s.id = v.id and (s.last_run_at is null or s.last_run_at < v.last_run_at)`.execute(db);
}

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
      sql<number>`count(*) filter (where state in ('held', 'queued'))::int`.as('waiting'),
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

/** Sets next_run_at for many schedules at once (null for paused ones). */
export async function setNextRunAt(db: Db, rows: { id: number; next_at: string | null }[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`
    update wombat.schedules s set next_run_at = v.next_at
    from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as v(id bigint, next_at timestamptz)
    where s.id = v.id and s.next_run_at is distinct from v.next_at`.execute(db);
}

export interface EngineRow {
  id: string;
  host: string;
  pid: number;
  version: string;
  heartbeatIntervalMs: number;
  enabled: boolean;
}

export async function insertEngine(db: Db, e: EngineRow): Promise<void> {
  await db
    .withTables<SchedulerTables>()
    .insertInto('wombat.engines')
    .values({ id: e.id, host: e.host, pid: e.pid, version: e.version, heartbeat_interval_ms: e.heartbeatIntervalMs, enabled: e.enabled })
    .onConflict((oc) => oc.column('id').doUpdateSet({ last_beat_at: sql<Date>`now()`, stopped_at: null }))
    .execute();
}

/** Beats and reads the database clock (ms since the epoch) in the same round trip. */
export async function beatEngine(db: Db, id: string): Promise<number | undefined> {
  const result = await sql<{ db_now_ms: number }>`
    update wombat.engines set last_beat_at = now(), stopped_at = null where id = ${id}
    returning (extract(epoch from clock_timestamp()) * 1000)::float8 as db_now_ms`.execute(db);
  return result.rows[0]?.db_now_ms;
}

export async function markEngineStopped(db: Db, id: string): Promise<void> {
  await db.withTables<SchedulerTables>().updateTable('wombat.engines').set({ stopped_at: sql<Date>`now()` }).where('id', '=', id).execute();
}

/** Deletes heartbeat rows of engines that stopped or went silent long ago. */
export async function deleteStaleEngines(db: Db, olderThanDays: number): Promise<number> {
  const res = await sql`delete from wombat.engines where last_beat_at < now() - make_interval(days => ${olderThanDays})`.execute(db);
  return Number(res.numAffectedRows ?? 0);
}

/** True when this transaction holds the lock; released at commit. */
export async function tryXactLock(db: Db, key: string): Promise<boolean> {
  const result = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(hashtext(${key})) as locked`.execute(db);
  return result.rows[0]?.locked === true;
}
