import { sql, type Kysely } from 'kysely';
import type { WorkerTables } from './tables.ts';

/**
 * The worker registry: one heartbeat row per worker process in wombat.workers.
 * A worker is live while stopped_at is null and its last beat is younger than
 * three heartbeat intervals (the rule wombat.engines follows too). The
 * reconciler ends the runs of workers that are not live.
 */
type Db = Kysely<WorkerTables>;

/**
 * How a worker consumes one queue: `loops` fetch loops (WORKER_CONCURRENCY), each
 * fetching up to `batchSize` jobs (WORKER_BATCH_SIZE) and running them at once, so
 * at most loops x batchSize of its handlers run together.
 */
export interface WorkerQueueSettings {
  queue: string;
  loops: number;
  batchSize: number;
}

export interface WorkerRegistration {
  id: string;
  host: string;
  pid: number;
  version: string;
  /** Its queues, in order, each with its fetch loops and batch size. */
  queueSettings: WorkerQueueSettings[];
  heartbeatIntervalMs: number;
}

export interface WorkerStatus extends Omit<WorkerRegistration, 'queueSettings'> {
  queues: string[];
  /** Handlers this process may run at once: loops x batch size, summed over its queues. */
  concurrency: number;
  /** Per queue; null for a row registered before the registry recorded them (migration 0011). */
  queueSettings: WorkerQueueSettings[] | null;
  startedAt: Date;
  lastBeatAt: Date;
  runsInHand: number;
  rssBytes: number;
  stoppedAt: Date | null;
  alive: boolean;
}

/** Handlers that may run at once over all the queues: the registry's `concurrency`. */
export function handlersAtOnce(settings: WorkerQueueSettings[]): number {
  return settings.reduce((n, q) => n + q.loops * q.batchSize, 0);
}

/** SQL for "this wombat.workers row is live", judged by the database clock. */
export const WORKER_ALIVE_SQL = 'stopped_at is null and last_beat_at > now() - make_interval(secs => heartbeat_interval_ms * 3 / 1000.0)';

export async function registerWorker(db: Db, w: WorkerRegistration): Promise<void> {
  await db
    .insertInto('wombat.workers')
    .values({
      id: w.id,
      host: w.host,
      pid: w.pid,
      version: w.version,
      queues: sql<string[]>`${`{${w.queueSettings.map((q) => q.queue).join(',')}}`}::text[]`,
      concurrency: handlersAtOnce(w.queueSettings),
      queue_settings: sql`${JSON.stringify(w.queueSettings.map((q) => ({ queue: q.queue, loops: q.loops, batch_size: q.batchSize })))}::text::jsonb`,
      heartbeat_interval_ms: w.heartbeatIntervalMs,
      rss_bytes: process.memoryUsage.rss(),
    })
    .onConflict((oc) => oc.column('id').doUpdateSet({ last_beat_at: sql<Date>`now()`, stopped_at: null }))
    .execute();
}

/** Beats; false when the row is gone (deleted as stale), so the caller registers again. */
export async function beatWorker(db: Db, id: string, state: { runsInHand: number; rssBytes: number }): Promise<boolean> {
  const res = await db
    .updateTable('wombat.workers')
    .set({ last_beat_at: sql<Date>`now()`, runs_in_hand: state.runsInHand, rss_bytes: state.rssBytes, stopped_at: null })
    .where('id', '=', id)
    .executeTakeFirst();
  return res.numUpdatedRows > 0n;
}

export async function markWorkerStopped(db: Db, id: string): Promise<void> {
  await db.updateTable('wombat.workers').set({ stopped_at: sql<Date>`now()`, runs_in_hand: 0 }).where('id', '=', id).execute();
}

/** Live workers and those gone within `goneWithinSeconds` (default a day), newest beat first. */
export async function listWorkers(db: Db, opts: { goneWithinSeconds?: number } = {}): Promise<WorkerStatus[]> {
  const gone = opts.goneWithinSeconds ?? 86_400;
  const rows = await db
    .selectFrom('wombat.workers')
    .selectAll()
    .select(sql<boolean>`${sql.raw(WORKER_ALIVE_SQL)}`.as('alive'))
    .where(sql<boolean>`last_beat_at > now() - make_interval(secs => ${gone})`)
    .orderBy('last_beat_at', 'desc')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    host: r.host,
    pid: r.pid,
    version: r.version,
    queues: r.queues,
    concurrency: r.concurrency,
    queueSettings: readQueueSettings(r.queue_settings),
    heartbeatIntervalMs: r.heartbeat_interval_ms,
    startedAt: new Date(r.started_at),
    lastBeatAt: new Date(r.last_beat_at),
    runsInHand: r.runs_in_hand,
    rssBytes: Number(r.rss_bytes),
    stoppedAt: r.stopped_at ? new Date(r.stopped_at) : null,
    alive: r.alive,
  }));
}

/** wombat.workers.queue_settings as stored (jsonb, snake_case); null when the worker did not record it. */
export function readQueueSettings(stored: unknown): WorkerQueueSettings[] | null {
  if (!Array.isArray(stored)) return null;
  return (stored as { queue: string; loops: number; batch_size: number }[]).map((q) => ({ queue: q.queue, loops: q.loops, batchSize: q.batch_size }));
}

/** Queue settings as the api, the dashboard and the CLI show them: with the handlers each queue may run at once. */
export function queueSettingsView(settings: WorkerQueueSettings[] | null) {
  return settings === null ? null : settings.map((q) => ({ queue: q.queue, loops: q.loops, batch_size: q.batchSize, max_running: q.loops * q.batchSize }));
}

/** A worker as the api and the CLI show it (snake_case, ISO times): alive, stale (silent: its runs are ended as lost) or stopped. */
export function workerView(w: WorkerStatus, now: Date) {
  return {
    id: w.id,
    host: w.host,
    pid: w.pid,
    version: w.version,
    state: w.alive ? ('alive' as const) : w.stoppedAt !== null ? ('stopped' as const) : ('stale' as const),
    queues: w.queues,
    concurrency: w.concurrency,
    queue_settings: queueSettingsView(w.queueSettings),
    runs_in_hand: w.runsInHand,
    rss_bytes: w.rssBytes,
    started_at: w.startedAt.toISOString(),
    last_heartbeat: w.lastBeatAt.toISOString(),
    heartbeat_age_seconds: Math.max(0, Math.round((now.getTime() - w.lastBeatAt.getTime()) / 100) / 10),
    heartbeat_interval_ms: w.heartbeatIntervalMs,
    stopped_at: w.stoppedAt === null ? null : w.stoppedAt.toISOString(),
  };
}

/** Deletes rows of workers that stopped or went silent more than `olderThanDays` ago. */
export async function deleteStaleWorkers(db: Db, olderThanDays: number): Promise<number> {
  const res = await db.deleteFrom('wombat.workers').where(sql<boolean>`last_beat_at < now() - make_interval(days => ${olderThanDays})`).executeTakeFirst();
  return Number(res.numDeletedRows);
}
