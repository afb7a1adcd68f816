import type { Generated } from 'kysely';
import type { GeneratedTimestamp, Json, Timestamp } from '../platform/db-types.ts';

/**
 * wombat.workers: one heartbeat row per worker process, written only by the registry
 * (registry.ts). Its DDL is in the runs' migration 0005_run_lifecycle.sql, which
 * introduced workers together with the runs' worker_id and is frozen since; later
 * changes are in ./migrations.
 */
export interface WorkersTable {
  id: string;
  host: string;
  pid: number;
  version: string;
  queues: string[];
  concurrency: number;
  /** Migration 0011: [{queue, loops, batch_size}]; null for a worker registered before it. */
  queue_settings: Json | null;
  started_at: GeneratedTimestamp;
  last_beat_at: GeneratedTimestamp;
  heartbeat_interval_ms: number;
  runs_in_hand: Generated<number>;
  rss_bytes: Generated<number>;
  stopped_at: Timestamp | null;
}

export interface WorkerTables {
  'wombat.workers': WorkersTable;
}
