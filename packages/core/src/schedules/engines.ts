import { sql, type Kysely, type Transaction } from 'kysely';
import { WORKER_ALIVE_SQL } from '../workers/registry.ts';
import type { SchedulerTables } from './tables.ts';
import type { EngineStatus } from './types.ts';

/**
 * The engines' registry: one heartbeat row per scheduler-engine process in
 * wombat.engines, and this module its only writer. An engine is live by the rule
 * the workers' rows follow (WORKER_ALIVE_SQL): not stopped, and a beat within three
 * of its heartbeat intervals by the database clock.
 */
type Db = Kysely<SchedulerTables> | Transaction<SchedulerTables>;

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
  await db.updateTable('wombat.engines').set({ stopped_at: sql<Date>`now()` }).where('id', '=', id).execute();
}

/** Deletes heartbeat rows of engines that stopped or went silent long ago. */
export async function deleteStaleEngines(db: Db, olderThanDays: number): Promise<number> {
  const res = await sql`delete from wombat.engines where last_beat_at < now() - make_interval(days => ${olderThanDays})`.execute(db);
  return Number(res.numAffectedRows ?? 0);
}

/** Engines by last heartbeat, newest first; `alive` is judged by the database clock. */
export async function listEngines(db: Db): Promise<EngineStatus[]> {
  const rows = await db
    .selectFrom('wombat.engines')
    .selectAll()
    .select(sql<boolean>`${sql.raw(WORKER_ALIVE_SQL)}`.as('alive'))
    .orderBy('last_beat_at', 'desc')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    host: r.host,
    pid: r.pid,
    version: r.version,
    startedAt: new Date(r.started_at),
    lastBeatAt: new Date(r.last_beat_at),
    heartbeatIntervalMs: r.heartbeat_interval_ms,
    enabled: r.enabled,
    stoppedAt: r.stopped_at ? new Date(r.stopped_at) : null,
    alive: r.alive,
  }));
}
