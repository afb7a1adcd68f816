import type { ColumnType, Generated, Selectable } from 'kysely';
import type { RunState, RunTrigger } from './run-lifecycle/states.ts';

export type Json = unknown;
export type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A timestamp column with a database default: optional on insert, a Date when selected. */
export type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

/**
 * wombat.runs. Read it anywhere; write it only through the run lifecycle
 * (packages/core/src/run-lifecycle).
 */
export interface RunsTable {
  id: string;
  job: string;
  trigger: RunTrigger;
  schedule_id: number | null;
  parent_id: string | null;
  scheduled_for: Timestamp | null;
  state: Generated<RunState>;
  reason: string | null;
  params: Generated<Json>;
  progress: Generated<number>;
  progress_message: string | null;
  result: Json | null;
  error: Json | null;
  attempts: Generated<number>;
  created_at: GeneratedTimestamp;
  published_at: Timestamp | null;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
  updated_at: GeneratedTimestamp;
  /** Migration 0004: requeue links. */
  retry_of: Generated<string | null>;
  requeued_as: Generated<string | null>;
  /** Migration 0005: the worker process running the current attempt. */
  worker_id: Generated<string | null>;
}

export type Run = Selectable<RunsTable>;

/** wombat.workers (migration 0005): one heartbeat row per worker process. */
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

/** wombat.superseded_attempts (migration 0009): writes refused because their attempt had lost its claim. */
export interface SupersededAttemptsTable {
  run_id: string;
  attempt: number;
  state: string;
  worker_id: string | null;
  result: Json | null;
  error: Json | null;
  recorded_at: GeneratedTimestamp;
}

/** Tables of the core migrations. Other packages add theirs with `db.withTables<...>()`. */
export interface CoreTables {
  'wombat.runs': RunsTable;
  'wombat.superseded_attempts': SupersededAttemptsTable;
  'wombat.workers': WorkersTable;
}
