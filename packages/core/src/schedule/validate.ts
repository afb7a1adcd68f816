import { checkJobParams, isJobType, JOB_TYPES } from '../jobs.ts';
import { textProblem, unstorableText } from '../json-text.ts';
import { cronFor, EVERY_MAX_SECONDS, EVERY_MIN_SECONDS, parseEvery, parseTimeOfDay } from './occurrences.ts';
import { isTimeZone } from './time-zone.ts';
import {
  MISSED_POLICIES,
  OVERLAP_POLICIES,
  SCHEDULE_STATUSES,
  type ScheduleDefinition,
  type SchedulePatch,
  type ScheduleTrigger,
} from './types.ts';

/** Defaults of a new schedule; the api documents these. */
export const SCHEDULE_DEFAULTS = {
  timezone: 'UTC',
  overlap: 'skip',
  missed: 'once',
  catchupWindowSeconds: 86_400,
  catchupMax: 10,
  jitterSeconds: 0,
} as const;

export type ScheduleValidation<T> = { ok: true; value: T } | { ok: false; problems: string[] };

type IntField = { key: keyof ScheduleDefinition; min: number; max: number; nullable: boolean };
const INT_FIELDS: Record<string, IntField> = {
  catchup_window_seconds: { key: 'catchupWindowSeconds', min: 0, max: 2_592_000, nullable: false },
  catchup_max: { key: 'catchupMax', min: 1, max: 1000, nullable: false },
  jitter_seconds: { key: 'jitterSeconds', min: 0, max: 86_400, nullable: false },
  timeout_seconds: { key: 'timeoutSeconds', min: 1, max: 604_800, nullable: true },
  max_retries: { key: 'maxRetries', min: 0, max: 100, nullable: true },
  retry_delay_seconds: { key: 'retryDelaySeconds', min: 0, max: 86_400, nullable: true },
};
const KNOWN = new Set([
  'name', 'job', 'cron', 'every', 'times', 'timezone', 'params', 'overlap', 'missed', 'retry_backoff', 'status', 'paused_reason',
  ...Object.keys(INT_FIELDS),
]);

/**
 * Checks a schedule in the api's JSON shape (snake_case) and normalises it to a
 * ScheduleDefinition. With `partial`, only the given fields are checked (a PATCH);
 * params of a PATCH without `job` are checked against the stored job on update.
 */
export function validateScheduleInput(input: unknown, opts: { partial: true; defaultTimezone?: string }): ScheduleValidation<SchedulePatch>;
export function validateScheduleInput(input: unknown, opts?: { partial?: false; defaultTimezone?: string }): ScheduleValidation<ScheduleDefinition>;
export function validateScheduleInput(
  input: unknown,
  opts?: { partial?: boolean; defaultTimezone?: string },
): ScheduleValidation<SchedulePatch | ScheduleDefinition>;
export function validateScheduleInput(
  input: unknown,
  opts: { partial?: boolean; defaultTimezone?: string } = {},
): ScheduleValidation<SchedulePatch | ScheduleDefinition> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, problems: ['the schedule must be a JSON object'] };
  }
  const partial = opts.partial === true;
  const raw = input as Record<string, unknown>;
  const has = (k: string) => Object.hasOwn(raw, k) && raw[k] !== undefined;
  const problems: string[] = [];
  const out: SchedulePatch = {};

  for (const k of Object.keys(raw)) if (!KNOWN.has(k)) problems.push(`${k} is not a schedule field; known fields: ${[...KNOWN].join(', ')}`);

  if (has('name')) {
    const n = raw.name;
    if (typeof n !== 'string' || n.trim().length === 0 || n.length > 100) problems.push('name must be a string of 1 to 100 characters');
    else if (/^\d+$/.test(n.trim())) problems.push('name must not be only digits (ids are numbers)');
    else if (/[\u0000-\u001f]/.test(n)) problems.push('name must not contain control characters');
    else if (textProblem(n)) problems.push(`name ${textProblem(n)}`);
    else out.name = n.trim();
  } else if (!partial) problems.push('name is required');

  if (has('job')) {
    if (isJobType(raw.job)) out.job = raw.job;
    else problems.push(`job must be one of ${JOB_TYPES.join(', ')}`);
  } else if (!partial) problems.push(`job is required: one of ${JOB_TYPES.join(', ')}`);

  if (has('timezone')) {
    if (typeof raw.timezone === 'string' && isTimeZone(raw.timezone)) out.timezone = raw.timezone;
    else problems.push(`timezone ${JSON.stringify(raw.timezone)} is not an IANA time zone, for example Asia/Seoul, Europe/Berlin or UTC`);
  } else if (!partial) out.timezone = opts.defaultTimezone ?? SCHEDULE_DEFAULTS.timezone;

  const triggers = ['cron', 'every', 'times'].filter(has);
  if (triggers.length > 1) problems.push(`give exactly one of cron, every or times, not ${triggers.join(' and ')}`);
  else if (triggers.length === 0 && !partial) problems.push('one of cron, every or times is required');
  else if (triggers.length === 1) {
    const trigger = checkTrigger(triggers[0]!, raw[triggers[0]!], out.timezone ?? 'UTC', problems);
    if (trigger) out.trigger = trigger;
  }

  if (has('params')) {
    const p = raw.params;
    if (p === null || typeof p !== 'object' || Array.isArray(p)) problems.push('params must be a JSON object');
    else if (unstorableText(p, 'params')) problems.push(unstorableText(p, 'params')!);
    else if (out.job) {
      const check = checkJobParams(out.job, p);
      if (check.ok) out.params = check.value as object;
      else problems.push(...check.problems);
    } else if (!has('job')) out.params = p;
  } else if (!partial && out.job) {
    const check = checkJobParams(out.job, {});
    if (check.ok) out.params = {};
    else problems.push(...check.problems.map((s) => `${s} (params is required for job ${out.job})`));
  }

  enumField(raw, 'overlap', OVERLAP_POLICIES, problems, (v) => (out.overlap = v), partial ? undefined : SCHEDULE_DEFAULTS.overlap);
  enumField(raw, 'missed', MISSED_POLICIES, problems, (v) => (out.missed = v), partial ? undefined : SCHEDULE_DEFAULTS.missed);
  enumField(raw, 'status', SCHEDULE_STATUSES, problems, (v) => (out.status = v), partial ? undefined : 'active');

  for (const [k, f] of Object.entries(INT_FIELDS)) {
    const v = raw[k];
    if (!has(k) || (v === null && f.nullable)) {
      if (has(k) || !partial) (out as Record<string, unknown>)[f.key] = f.nullable ? null : SCHEDULE_DEFAULTS[f.key as keyof typeof SCHEDULE_DEFAULTS];
      continue;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < f.min || v > f.max) problems.push(`${k} must be an integer from ${f.min} to ${f.max}${f.nullable ? ' (or null for the job default)' : ''}`);
    else (out as Record<string, unknown>)[f.key] = v;
  }

  if (has('retry_backoff') && raw.retry_backoff !== null) {
    if (typeof raw.retry_backoff === 'boolean') out.retryBackoff = raw.retry_backoff;
    else problems.push('retry_backoff must be true, false or null (job default)');
  } else if (has('retry_backoff') || !partial) out.retryBackoff = null;

  if (has('paused_reason') && raw.paused_reason !== null) {
    if (typeof raw.paused_reason === 'string' && raw.paused_reason.length <= 500) out.pausedReason = raw.paused_reason;
    else problems.push('paused_reason must be a string of at most 500 characters, or null');
  } else if (has('paused_reason') || !partial) out.pausedReason = null;
  if (out.status === 'active') out.pausedReason = null;

  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: out as SchedulePatch | ScheduleDefinition };
}

function enumField<T extends string>(raw: Record<string, unknown>, key: string, values: readonly T[], problems: string[], set: (v: T) => void, dflt: T | undefined) {
  const v = raw[key];
  if (v === undefined) {
    if (dflt !== undefined) set(dflt);
  } else if (typeof v === 'string' && (values as readonly string[]).includes(v)) set(v as T);
  else problems.push(`${key} must be one of ${values.join(', ')}`);
}

function checkTrigger(kind: string, v: unknown, timezone: string, problems: string[]): ScheduleTrigger | undefined {
  if (kind === 'cron') {
    if (typeof v !== 'string') {
      problems.push('cron must be a string of 5 fields (minute hour day month weekday) or 6 with seconds first');
      return undefined;
    }
    const pattern = v.trim().replace(/\s+/g, ' ');
    const fields = pattern.split(' ').length;
    if (fields !== 5 && fields !== 6) {
      problems.push(`cron "${v}" has ${fields} fields; give 5 (minute hour day month weekday) or 6 (seconds first)`);
      return undefined;
    }
    try {
      if (!cronFor(pattern, timezone).nextRun()) {
        problems.push(`cron "${v}" never fires`);
        return undefined;
      }
    } catch (err) {
      problems.push(`cron "${v}" is not a valid cron pattern: ${(err as Error).message}`);
      return undefined;
    }
    return { kind: 'cron', cron: pattern };
  }
  if (kind === 'every') {
    const seconds = typeof v === 'string' ? parseEvery(v) : null;
    if (seconds === null || seconds < EVERY_MIN_SECONDS || seconds > EVERY_MAX_SECONDS) {
      problems.push(`every ${JSON.stringify(v)} must be a number and a unit (s, m, h, d, w, mo), from 1s to 1mo, for example "30s", "5m" or "1d"`);
      return undefined;
    }
    return { kind: 'every', every: (v as string).trim(), everySeconds: seconds };
  }
  if (!Array.isArray(v) || v.length === 0 || v.length > 100) {
    problems.push('times must be a list of 1 to 100 times of day, for example ["09:00", "18:00"]');
    return undefined;
  }
  const bad = v.filter((x) => typeof x !== 'string' || parseTimeOfDay(x) === null);
  if (bad.length > 0) {
    problems.push(`times ${bad.map((b) => JSON.stringify(b)).join(', ')} must be HH:MM or HH:MM:SS (24-hour), for example "09:00"`);
    return undefined;
  }
  const unique = [...new Set(v as string[])].sort();
  if (unique.length !== v.length) {
    problems.push('times must not repeat a time');
    return undefined;
  }
  return { kind: 'times', times: unique };
}

/** Applies a PATCH to a definition and checks what the fields say together. */
export function mergeSchedulePatch(current: ScheduleDefinition, patch: SchedulePatch): ScheduleValidation<ScheduleDefinition> {
  const merged: ScheduleDefinition = { ...current, ...patch };
  if (merged.status === 'active') merged.pausedReason = null;
  const problems: string[] = [];
  if (merged.trigger.kind === 'cron') {
    try {
      cronFor(merged.trigger.cron, merged.timezone);
    } catch (err) {
      problems.push(`cron "${merged.trigger.cron}" is not valid in ${merged.timezone}: ${(err as Error).message}`);
    }
  }
  // A new job without new params keeps the stored params only if they still fit.
  const check = checkJobParams(merged.job, merged.params);
  if (check.ok) merged.params = check.value as object;
  else problems.push(...check.problems.map((p) => `${p} (for job ${merged.job})`));
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: merged };
}

/**
 * Checks a stored definition before the engine runs it: rows written by hand in
 * SQL bypass validateScheduleInput. An empty list means it can run.
 */
export function checkScheduleDefinition(def: ScheduleDefinition): string[] {
  const problems: string[] = [];
  if (!isJobType(def.job)) problems.push(`job "${def.job}" is unknown; known jobs: ${JOB_TYPES.join(', ')}`);
  if (!isTimeZone(def.timezone)) problems.push(`timezone "${def.timezone}" is not an IANA time zone`);
  const t = def.trigger;
  if (t.kind === 'cron') checkTrigger('cron', t.cron, isTimeZone(def.timezone) ? def.timezone : 'UTC', problems);
  else if (t.kind === 'every') {
    if (!(t.everySeconds >= EVERY_MIN_SECONDS && t.everySeconds <= EVERY_MAX_SECONDS)) problems.push(`every "${t.every}" must be from 1s to 1mo`);
  } else checkTrigger('times', t.times, 'UTC', problems);
  if (isJobType(def.job)) {
    const check = checkJobParams(def.job, def.params);
    if (!check.ok) problems.push(...check.problems);
  }
  return problems;
}
