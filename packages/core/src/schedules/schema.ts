import Type, { type Static } from 'typebox';
import { JOB_TYPES } from '../jobs/contracts.ts';
import { MISSED_POLICIES, OVERLAP_POLICIES, SCHEDULE_STATUSES } from './types.ts';

/**
 * The schedule as callers write it (the api's JSON body, the CLI's flags, files):
 * one TypeBox schema shared by the api (request body and OpenAPI document), the
 * `wombat` CLI and, through validateScheduleInput, the engine's rules. What a
 * JSON schema cannot say (a cron pattern that parses, an IANA time zone, exactly
 * one trigger, params that fit the job) is checked in validate.ts.
 */
export const SCHEDULE_DEFAULTS = {
  timezone: 'UTC',
  overlap: 'skip',
  missed: 'once',
  catchupWindowSeconds: 86_400,
  catchupMax: 10,
  jitterSeconds: 0,
  waitForSeconds: 3600,
} as const;

/** Bounds of wait_for (the column's check in migration 0016): a second to a week. */
export const WAIT_FOR_BOUNDS = { min: 1, max: 604_800 } as const;

const literals = <T extends string>(values: readonly T[], description: string) => Type.Union(values.map((v) => Type.Literal(v)), { description });
const nullableInt = (minimum: number, maximum: number, description: string) =>
  Type.Union([Type.Integer({ minimum, maximum }), Type.Null()], { description: `${description}; null: the job's default` });

/** Bounds of the integer fields, also used in their error messages. */
export const SCHEDULE_INT_BOUNDS = {
  catchup_window_seconds: { min: 0, max: 2_592_000, nullable: false },
  catchup_max: { min: 1, max: 1000, nullable: false },
  jitter_seconds: { min: 0, max: 86_400, nullable: false },
  // pg-boss refuses a job that may run longer than a day (expireInSeconds up to 86400).
  timeout_seconds: { min: 1, max: 86_400, nullable: true },
  max_retries: { min: 0, max: 100, nullable: true },
  retry_delay_seconds: { min: 0, max: 86_400, nullable: true },
} as const;
const b = SCHEDULE_INT_BOUNDS;

export const TIME_OF_DAY_PATTERN = '^([01]\\d|2[0-3]):[0-5]\\d(:[0-5]\\d)?$';

const fields = {
  name: Type.String({ minLength: 1, maxLength: 100, description: 'unique name, 1-100 characters, not only digits' }),
  job: literals(JOB_TYPES, `job type: ${JOB_TYPES.join(', ')}`),
  cron: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'cron pattern: 5 fields (minute hour day month weekday) or 6 with seconds first; give exactly one of cron, every, times' })),
  every: Type.Optional(Type.String({ minLength: 2, maxLength: 20, description: 'fixed interval, a number and a unit (s, m, h, d, w, mo) from 1s to 1mo: "30s", "5m", "1h", "1d"' })),
  times: Type.Optional(Type.Array(Type.String({ pattern: TIME_OF_DAY_PATTERN }), { minItems: 1, maxItems: 100, description: 'times of day HH:MM or HH:MM:SS (24-hour), e.g. ["09:00", "18:00"]' })),
  timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone the trigger is read in, e.g. Asia/Seoul (default: the api\'s TZ)' })),
  params: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'job parameters, checked against the job\'s schema' })),
  overlap: Type.Optional(literals(OVERLAP_POLICIES, `when the previous run is still unfinished: allow, skip or queue-one (default ${SCHEDULE_DEFAULTS.overlap})`)),
  missed: Type.Optional(literals(MISSED_POLICIES, `occurrences missed while no engine ran: skip, once or all (default ${SCHEDULE_DEFAULTS.missed})`)),
  catchup_window_seconds: Type.Optional(Type.Integer({ minimum: b.catchup_window_seconds.min, maximum: b.catchup_window_seconds.max, description: `how far back missed occurrences are caught up (default ${SCHEDULE_DEFAULTS.catchupWindowSeconds})` })),
  catchup_max: Type.Optional(Type.Integer({ minimum: b.catchup_max.min, maximum: b.catchup_max.max, description: `most missed occurrences run on catch-up (default ${SCHEDULE_DEFAULTS.catchupMax})` })),
  jitter_seconds: Type.Optional(Type.Integer({ minimum: b.jitter_seconds.min, maximum: b.jitter_seconds.max, description: 'spread publication up to this many seconds after the occurrence (default 0)' })),
  timeout_seconds: Type.Optional(nullableInt(b.timeout_seconds.min, b.timeout_seconds.max, 'job timeout')),
  max_retries: Type.Optional(nullableInt(b.max_retries.min, b.max_retries.max, 'retry limit')),
  retry_delay_seconds: Type.Optional(nullableInt(b.retry_delay_seconds.min, b.retry_delay_seconds.max, 'delay between retries')),
  retry_backoff: Type.Optional(Type.Union([Type.Boolean(), Type.Null()], { description: 'exponential backoff between retries; null: the job\'s default' })),
  status: Type.Optional(literals(SCHEDULE_STATUSES, 'active or paused (default active)')),
  after: Type.Optional(
    Type.Array(Type.String({ minLength: 1, maxLength: 100 }), {
      maxItems: 50,
      description: 'names of schedules whose runs for the same period (the local day for a daily schedule) must complete first, e.g. ["collect-symbols"]',
    }),
  ),
  wait_for: Type.Optional(
    Type.Union([Type.Integer({ minimum: WAIT_FOR_BOUNDS.min, maximum: WAIT_FOR_BOUNDS.max }), Type.String({ minLength: 2, maxLength: 20 })], {
      description: `how long an occurrence waits for its prerequisites before it ends skipped: seconds, or a duration like "90m" or "1h" (default ${SCHEDULE_DEFAULTS.waitForSeconds}s)`,
    }),
  ),
  paused_reason: Type.Optional(Type.Union([Type.String({ maxLength: 500 }), Type.Null()], { description: 'why it is paused, at most 500 characters' })),
};

/** A new schedule (POST, PUT): name and job required, exactly one of cron, every, times. */
export const ScheduleInputSchema = Type.Object(fields, { additionalProperties: false, description: 'a schedule: name, job, one of cron/every/times, and optional policies' });

/** A change (PATCH): any of the fields; a given trigger replaces the stored one. */
export const SchedulePatchSchema = Type.Partial(ScheduleInputSchema, { additionalProperties: false, description: 'the fields to change' });

export type ScheduleInput = Static<typeof ScheduleInputSchema>;
export type ScheduleInputPatch = Static<typeof SchedulePatchSchema>;
export const SCHEDULE_FIELDS = Object.keys(fields);
