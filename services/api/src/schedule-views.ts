import { describeTrigger, nextOccurrences, type EngineStatus, type Schedule } from '@wombat/core/schedules';
import Type from 'typebox';

/** Schedules in the api's JSON shape: the snake_case fields a create takes, plus what the engine keeps. */
const nullable = <T extends Parameters<typeof Type.Union>[0][number]>(s: T) => Type.Union([s, Type.Null()]);
const time = nullable(Type.String({ format: 'date-time' }));

export const ScheduleSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  job: Type.String(),
  trigger: Type.String({ description: 'the trigger as text, e.g. "cron 0 9 * * *", "every 5m", "at 09:00, 18:00"' }),
  cron: nullable(Type.String()),
  every: nullable(Type.String()),
  times: nullable(Type.Array(Type.String())),
  timezone: Type.String(),
  params: Type.Unknown(),
  overlap: Type.String(),
  missed: Type.String(),
  catchup_window_seconds: Type.Integer(),
  catchup_max: Type.Integer(),
  jitter_seconds: Type.Integer(),
  timeout_seconds: nullable(Type.Integer()),
  max_retries: nullable(Type.Integer()),
  retry_delay_seconds: nullable(Type.Integer()),
  retry_backoff: nullable(Type.Boolean()),
  status: Type.String({ description: 'active or paused' }),
  paused_reason: nullable(Type.String()),
  after: Type.Array(Type.String(), { description: 'names of the schedules whose runs for the same period must complete first (dependencies)' }),
  wait_for: Type.Integer({ description: 'seconds an occurrence waits for its prerequisites before it ends skipped (dependency_timeout)' }),
  wait_for_seconds: Type.Integer({ description: 'the same as wait_for' }),
  built_in: Type.Boolean(),
  version: Type.Integer(),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
  next_run_at: time,
  last_run_at: time,
  last_run_id: nullable(Type.String()),
});

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

export function scheduleView(s: Schedule) {
  const t = s.trigger;
  return {
    id: s.id,
    name: s.name,
    job: s.job,
    trigger: describeTrigger(s),
    cron: t.kind === 'cron' ? t.cron : null,
    every: t.kind === 'every' ? t.every : null,
    times: t.kind === 'times' ? t.times : null,
    timezone: s.timezone,
    params: s.params,
    overlap: s.overlap,
    missed: s.missed,
    catchup_window_seconds: s.catchupWindowSeconds,
    catchup_max: s.catchupMax,
    jitter_seconds: s.jitterSeconds,
    timeout_seconds: s.timeoutSeconds,
    max_retries: s.maxRetries,
    retry_delay_seconds: s.retryDelaySeconds,
    retry_backoff: s.retryBackoff,
    status: s.status,
    paused_reason: s.pausedReason,
    after: s.after,
    wait_for: s.waitForSeconds,
    wait_for_seconds: s.waitForSeconds,
    built_in: s.builtIn,
    version: s.version,
    created_at: s.createdAt.toISOString(),
    updated_at: s.updatedAt.toISOString(),
    next_run_at: iso(s.nextRunAt),
    last_run_at: iso(s.lastRunAt),
    last_run_id: s.lastRunId,
  };
}

export const EngineSchema = Type.Object({
  id: Type.String(),
  host: Type.String(),
  pid: Type.Integer(),
  version: Type.String(),
  state: Type.String({ description: 'running (heartbeat fresh, scheduling), disabled (alive, scheduler turned off), stale (heartbeat too old) or stopped' }),
  started_at: Type.String({ format: 'date-time' }),
  last_heartbeat: Type.String({ format: 'date-time' }),
  heartbeat_age_seconds: Type.Number(),
  stopped_at: time,
});

export function engineView(e: EngineStatus, now: Date) {
  const state = e.stoppedAt !== null ? 'stopped' : !e.alive ? 'stale' : e.enabled ? 'running' : 'disabled';
  return {
    id: e.id,
    host: e.host,
    pid: e.pid,
    version: e.version,
    state,
    started_at: e.startedAt.toISOString(),
    last_heartbeat: e.lastBeatAt.toISOString(),
    heartbeat_age_seconds: Math.max(0, Math.round((now.getTime() - e.lastBeatAt.getTime()) / 100) / 10),
    stopped_at: iso(e.stoppedAt),
  };
}

/** The next run of an active schedule: the engine's own figure, else computed from the definition. */
export function nextRunOf(s: Schedule, now: Date): Date | null {
  if (s.status !== 'active') return null;
  if (s.nextRunAt !== null && s.nextRunAt.getTime() >= now.getTime()) return s.nextRunAt;
  return nextOccurrences(s, now, 1)[0] ?? null;
}
