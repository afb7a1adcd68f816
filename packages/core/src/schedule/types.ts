import type { ColumnType, Generated, Selectable } from 'kysely';
import type { Json, Timestamp } from '../db-types.ts';
import type { JobType } from '../jobs.ts';

export const OVERLAP_POLICIES = ['allow', 'skip', 'queue-one'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

export const MISSED_POLICIES = ['skip', 'once', 'all'] as const;
export type MissedPolicy = (typeof MISSED_POLICIES)[number];

export const SCHEDULE_STATUSES = ['active', 'paused'] as const;
export type ScheduleStatus = (typeof SCHEDULE_STATUSES)[number];

/** NOTIFY channel a trigger on wombat.schedules uses on every definition or status change; payload is the id. */
export const SCHEDULES_CHANNEL = 'wombat_schedules';

/**
 * When a schedule fires. `every` is fixed elapsed time (unaffected by DST),
 * anchored at 2000-01-01T00:00 wall time in the schedule's time zone, so "1d"
 * fires at local midnight until the first DST change and every 86,400 s after.
 */
export type ScheduleTrigger =
  | { kind: 'cron'; cron: string }
  | { kind: 'every'; every: string; everySeconds: number }
  | { kind: 'times'; times: string[] };

/**
 * A validated, normalised schedule definition (camelCase). Optional job settings
 * left null fall back to the job's defaults (jobs.ts `jobDefaults`).
 */
export interface ScheduleDefinition {
  name: string;
  job: JobType;
  trigger: ScheduleTrigger;
  /** IANA time zone the trigger is read in. */
  timezone: string;
  params: object;
  overlap: OverlapPolicy;
  missed: MissedPolicy;
  catchupWindowSeconds: number;
  catchupMax: number;
  jitterSeconds: number;
  timeoutSeconds: number | null;
  maxRetries: number | null;
  retryDelaySeconds: number | null;
  retryBackoff: boolean | null;
  status: ScheduleStatus;
  pausedReason: string | null;
}

/** A PATCH: only the fields given; a given trigger replaces the stored one. */
export type SchedulePatch = Partial<ScheduleDefinition>;

/**
 * A stored schedule (camelCase, like ScheduleDefinition). `version` and
 * `updatedAt` change on every definition or status edit; `nextRunAt`,
 * `lastRunAt` (the last occurrence recorded, in whatever state) and `lastRunId`
 * are kept by the engine.
 */
export interface Schedule extends ScheduleDefinition {
  id: number;
  builtIn: boolean;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  nextRunAt: Date | null;
  lastRunAt: Date | null;
  lastRunId: string | null;
}

/** One scheduler-engine process, as its heartbeat row describes it. */
export interface EngineStatus {
  id: string;
  host: string;
  pid: number;
  version: string;
  startedAt: Date;
  lastBeatAt: Date;
  heartbeatIntervalMs: number;
  enabled: boolean;
  stoppedAt: Date | null;
  /** Beat within three heartbeat intervals (by the database clock) and not stopped. */
  alive: boolean;
}

/** A timestamp column with a database default. */
type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

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
