import { sql, type Kysely, type Transaction } from 'kysely';
import type { CoreTables, SchedulerTables } from '@wombat/core';

/**
 * The engine's SQL, one function per statement, database handle first. Batches
 * travel as one JSON parameter (jsonb_to_recordset), so a batch of any size is
 * one round trip.
 */
type Db = Kysely<CoreTables> | Transaction<CoreTables>;

export interface OccurrenceRow {
  id: string;
  schedule_id: number;
  job: string;
  scheduled_for: string;
  /** queued: published now; held: queued without a job until the running run ends; skipped | missed: recorded only. */
  state: 'queued' | 'held' | 'skipped' | 'missed';
  reason: string | null;
  params: object;
}

/**
 * Records occurrences under the (schedule_id, scheduled_for) unique index.
 * Returns the rows this call inserted: an occurrence another engine recorded
 * first is not returned, so its job is never sent twice. Rows go in (schedule,
 * instant) order so that two engines inserting overlapping batches lock in the
 * same order.
 */
export async function recordOccurrences(db: Db, rows: OccurrenceRow[]): Promise<{ id: string; schedule_id: number }[]> {
  if (rows.length === 0) return [];
  const result = await sql<{ id: string; schedule_id: number }>`
    insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, reason, params, published_at, finished_at)
    select id, job, 'schedule', schedule_id, scheduled_for,
           case when state = 'held' then 'queued' else state end, reason, params,
           case when state = 'queued' then now() end,
           case when state in ('skipped', 'missed') then now() end
    from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as v(
      id uuid, schedule_id bigint, job text, scheduled_for timestamptz, state text, reason text, params jsonb)
    order by schedule_id, scheduled_for
    on conflict (schedule_id, scheduled_for) where trigger = 'schedule' do nothing
    returning id, schedule_id`.execute(db);
  return result.rows;
}

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

/** Unfinished runs per schedule, for the overlap policy. */
export async function countActiveRuns(db: Db, scheduleIds: number[]): Promise<Map<number, { queued: number; running: number }>> {
  const out = new Map<number, { queued: number; running: number }>();
  if (scheduleIds.length === 0) return out;
  const rows = await db
    .selectFrom('wombat.runs')
    .select(['schedule_id', sql<number>`count(*) filter (where state = 'queued')::int`.as('queued'), sql<number>`count(*) filter (where state = 'running')::int`.as('running')])
    .where('schedule_id', 'in', scheduleIds)
    .where('state', 'in', ['queued', 'running'])
    .groupBy('schedule_id')
    .execute();
  for (const r of rows) out.set(r.schedule_id!, { queued: r.queued, running: r.running });
  return out;
}

/** Runs held by overlap queue-one whose schedule has nothing running any more; locked for this transaction. */
export async function claimReleasableRuns(db: Db, limit: number) {
  const result = await sql<{ id: string; job: string; params: object; schedule_id: number }>`
    select r.id, r.job, r.params, r.schedule_id from wombat.runs r
    where r.state = 'queued' and r.published_at is null and r.trigger = 'schedule'
      and not exists (select 1 from wombat.runs o where o.schedule_id = r.schedule_id and o.state = 'running')
    order by r.scheduled_for
    limit ${limit}
    for update of r skip locked`.execute(db);
  return result.rows;
}

export async function markRunsPublished(db: Db, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.updateTable('wombat.runs').set({ published_at: sql<Date>`now()` }).where('id', 'in', ids).execute();
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

/** Deletes one batch of finished runs older than the cutoff; returns how many. */
export async function deleteFinishedRuns(db: Db, opts: { taskTtlDays: number; retentionDays: number; batchSize: number }): Promise<number> {
  const res = await sql`
    delete from wombat.runs where id in (
      select id from wombat.runs
      where finished_at is not null and state in ('completed', 'failed', 'cancelled', 'skipped', 'missed')
        and finished_at < now() - make_interval(days => least(${opts.taskTtlDays}::int, ${opts.retentionDays}::int))
        and finished_at < now() - make_interval(days => case when trigger = 'task' then ${opts.taskTtlDays}::int else ${opts.retentionDays}::int end)
      limit ${opts.batchSize})`.execute(db);
  return Number(res.numAffectedRows ?? 0);
}
