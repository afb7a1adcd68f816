import type { Generated, Selectable } from 'kysely';
import type { GeneratedTimestamp, Json, Timestamp } from '../platform/db-types.ts';
import type { RunState, RunTrigger } from './states.ts';

/**
 * wombat.runs (migrations/0001_core.sql, 0004_api.sql, 0005_run_lifecycle.sql). Read it
 * anywhere; write it only through the run lifecycle (this folder).
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

export interface RunTables {
  'wombat.runs': RunsTable;
  'wombat.superseded_attempts': SupersededAttemptsTable;
}
