import type { JobType } from '../jobs/contracts.ts';

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
 * left null fall back to the job's defaults (`jobDefaults` of @wombat/core/jobs).
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
  /** Names of the schedules whose runs for the same period must complete before an occurrence runs. */
  after: string[];
  /** How long past its occurrence a run waits for its prerequisites before it ends skipped. */
  waitForSeconds: number;
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
