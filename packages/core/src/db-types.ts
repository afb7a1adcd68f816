import type { ColumnType, Generated, Selectable } from 'kysely';

export type Json = unknown;
export type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A timestamp column with a database default: optional on insert, a Date when selected. */
export type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export type RunTrigger = 'schedule' | 'manual' | 'task' | 'script' | 'fanout' | 'cli';
export type RunState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'skipped' | 'missed';
export const FINISHED_RUN_STATES: readonly RunState[] = ['completed', 'failed', 'cancelled', 'skipped', 'missed'];

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
}

export type Run = Selectable<RunsTable>;

/** Tables of migration 0001. Other packages add theirs with `db.withTables<...>()`. */
export interface CoreTables {
  'wombat.runs': RunsTable;
}
