import type { Generated, Selectable } from 'kysely';
import type { GeneratedTimestamp, Json, Timestamp } from '../platform/db-types.ts';

/**
 * wombat.schedules and wombat.engines (migrations/0002_scheduler.sql; 0008_alerts.sql of
 * the alerts adds alert_stale_factor, which only the alerts read; 0012 derives kind and
 * every_seconds of rows written by hand and refuses bad ones). store.ts is the only
 * writer of schedules, engines.ts of engines.
 */
export interface SchedulesTable {
  id: Generated<number>;
  name: string;
  job: string;
  kind: 'cron' | 'every' | 'times';
  cron: string | null;
  every: string | null;
  every_seconds: number | null;
  times: string[] | null;
  timezone: string;
  params: Json;
  overlap: string;
  missed: string;
  catchup_window_seconds: number;
  catchup_max: number;
  jitter_seconds: number;
  timeout_seconds: number | null;
  max_retries: number | null;
  retry_delay_seconds: number | null;
  retry_backoff: boolean | null;
  status: string;
  paused_reason: string | null;
  built_in: Generated<boolean>;
  version: Generated<number>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
  next_run_at: Timestamp | null;
  last_run_at: Timestamp | null;
  last_run_id: string | null;
  /** Migration 0016: the schedules this one waits for (names) and for how long. */
  after: Generated<string[]>;
  wait_for_seconds: Generated<number>;
}

export interface EnginesTable {
  id: string;
  host: string;
  pid: number;
  version: string;
  started_at: GeneratedTimestamp;
  last_beat_at: GeneratedTimestamp;
  heartbeat_interval_ms: number;
  enabled: boolean;
  stopped_at: Timestamp | null;
}

/** Tables of migration 0002: use with `db.withTables<SchedulerTables>()`. */
export type SchedulerTables = {
  'wombat.schedules': SchedulesTable;
  'wombat.engines': EnginesTable;
};

export type ScheduleRow = Selectable<SchedulesTable>;
