import Value from 'typebox/value';
import type { FieldIssue } from '../platform/errors.ts';
import { checkJobParams, JOB_TYPES } from '../jobs/contracts.ts';
import { textProblem, unstorableText } from '../platform/json-text.ts';
import { cronFor, EVERY_MAX_SECONDS, EVERY_MIN_SECONDS, parseEvery, parseTimeOfDay } from './occurrences.ts';
import { SCHEDULE_DEFAULTS, SCHEDULE_FIELDS, SCHEDULE_INT_BOUNDS, WAIT_FOR_BOUNDS, ScheduleInputSchema, SchedulePatchSchema, type ScheduleInputPatch } from './schema.ts';
import { isTimeZone } from './time-zone.ts';
import {
  MISSED_POLICIES,
  OVERLAP_POLICIES,
  SCHEDULE_STATUSES,
  type ScheduleDefinition,
  type SchedulePatch,
  type ScheduleTrigger,
} from './types.ts';


/** `problems` are the issues' messages, in order: what the CLI and the engine print. */
export type ScheduleValidation<T> = { ok: true; value: T } | { ok: false; problems: string[]; issues: FieldIssue[] };

const failed = (issues: FieldIssue[]) => ({ ok: false as const, problems: issues.map((i) => i.message), issues });

/** What to fix, per field, when the schema refuses it: one line each, in the caller's words. */
const FIELD_PROBLEM: Record<string, (v: unknown) => string> = {
  name: () => 'name must be a string of 1 to 100 characters',
  job: () => `job must be one of ${JOB_TYPES.join(', ')}`,
  cron: () => 'cron must be a string of 5 fields (minute hour day month weekday) or 6 with seconds first',
  every: (v) => `every ${JSON.stringify(v)} must be a number and a unit (s, m, h, d, w, mo), from 1s to 1mo, for example "30s", "5m" or "1d"`,
  times: (v) => {
    const bad = Array.isArray(v) ? v.filter((x) => typeof x !== 'string' || parseTimeOfDay(x) === null) : [];
    return bad.length > 0 && Array.isArray(v) && v.length <= 100
      ? `times ${bad.map((x) => JSON.stringify(x)).join(', ')} must be HH:MM or HH:MM:SS (24-hour), for example "09:00"`
      : 'times must be a list of 1 to 100 times of day, for example ["09:00", "18:00"]';
  },
  timezone: (v) => `timezone ${JSON.stringify(v)} is not an IANA time zone, for example Asia/Seoul, Europe/Berlin or UTC`,
  params: () => 'params must be a JSON object',
  overlap: () => `overlap must be one of ${OVERLAP_POLICIES.join(', ')}`,
  missed: () => `missed must be one of ${MISSED_POLICIES.join(', ')}`,
  status: () => `status must be one of ${SCHEDULE_STATUSES.join(', ')}`,
  retry_backoff: () => 'retry_backoff must be true, false or null (job default)',
  after: () => 'after must be a list of at most 50 schedule names, for example ["collect-symbols"]',
  wait_for: (v) => `wait_for ${JSON.stringify(v)} must be seconds from ${WAIT_FOR_BOUNDS.min} to ${WAIT_FOR_BOUNDS.max}, or a duration like "90m", "1h" or "2d" (at most 7d)`,
  paused_reason: () => 'paused_reason must be a string of at most 500 characters, or null',
  ...Object.fromEntries(
    Object.entries(SCHEDULE_INT_BOUNDS).map(([k, f]) => [k, () => `${k} must be an integer from ${f.min} to ${f.max}${f.nullable ? ' (or null for the job default)' : ''}`]),
  ),
};

/** The schema's verdict as lines that say what to fix: unknown fields, missing ones, then each bad field once. */
function schemaProblems(raw: Record<string, unknown>, partial: boolean): FieldIssue[] {
  const problems: FieldIssue[] = [];
  for (const k of Object.keys(raw)) {
    if (!SCHEDULE_FIELDS.includes(k)) problems.push({ field: k, message: `${k} is not a schedule field; known fields: ${SCHEDULE_FIELDS.join(', ')}` });
  }
  if (!partial) {
    if (raw.name === undefined) problems.push({ field: 'name', message: 'name is required' });
    if (raw.job === undefined) problems.push({ field: 'job', message: `job is required: one of ${JOB_TYPES.join(', ')}` });
  }
  const schema = partial ? SchedulePatchSchema : ScheduleInputSchema;
  const bad = new Set<string>();
  for (const e of Value.Errors(schema, raw)) {
    const field = e.instancePath.split('/')[1];
    if (field && Object.hasOwn(FIELD_PROBLEM, field)) bad.add(field);
  }
  for (const field of SCHEDULE_FIELDS) if (bad.has(field)) problems.push({ field, message: FIELD_PROBLEM[field]!(raw[field]) });
  return problems;
}

/**
 * Checks a schedule in the api's JSON shape (snake_case) against the shared
 * schema (schema.ts) and what a schema cannot express, and normalises it to a
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
    return failed([{ field: null, message: 'the schedule must be a JSON object' }]);
  }
  const partial = opts.partial === true;
  // An undefined field is an absent one (JSON has no undefined; callers building objects do).
  const raw = Object.fromEntries(Object.entries(input as Record<string, unknown>).filter(([, v]) => v !== undefined));
  const issues = schemaProblems(raw, partial);
  const say = (field: string | null, message: string) => issues.push({ field, message });
  const valid = (k: string) => Object.hasOwn(raw, k) && !issues.some((i) => i.field === k);
  const r = raw as ScheduleInputPatch;
  const out: SchedulePatch = {};

  if (valid('name')) {
    const n = r.name!.trim();
    if (n.length === 0) say('name', 'name must be a string of 1 to 100 characters');
    else if (/^\d+$/.test(n)) say('name', 'name must not be only digits (ids are numbers)');
    // eslint-disable-next-line no-control-regex -- matching control characters is the point
    else if (/[\u0000-\u001f]/.test(n)) say('name', 'name must not contain control characters');
    else if (textProblem(n)) say('name', `name ${textProblem(n)}`);
    else out.name = n;
  }
  if (valid('job')) out.job = r.job!;

  if (valid('timezone')) {
    if (isTimeZone(r.timezone!)) out.timezone = r.timezone!;
    else say('timezone', FIELD_PROBLEM.timezone!(r.timezone));
  } else if (!partial && !Object.hasOwn(raw, 'timezone')) out.timezone = opts.defaultTimezone ?? SCHEDULE_DEFAULTS.timezone;

  const triggers = ['cron', 'every', 'times'].filter((k) => Object.hasOwn(raw, k));
  if (triggers.length > 1) say(null, `give exactly one of cron, every or times, not ${triggers.join(' and ')}`);
  else if (triggers.length === 0 && !partial) say(null, 'one of cron, every or times is required');
  else if (triggers.length === 1 && valid(triggers[0]!)) {
    const trigger = checkTrigger(triggers[0]!, raw[triggers[0]!], out.timezone ?? 'UTC', (m) => say(triggers[0]!, m));
    if (trigger) out.trigger = trigger;
  }

  if (valid('params')) {
    const unstorable = unstorableText(r.params, 'params');
    if (unstorable) say('params', unstorable);
    else if (out.job) {
      const check = checkJobParams(out.job, r.params);
      if (check.ok) out.params = check.value as object;
      else for (const p of check.problems) say('params', p);
    } else if (!Object.hasOwn(raw, 'job')) out.params = r.params!;
  } else if (!partial && out.job && !Object.hasOwn(raw, 'params')) {
    const check = checkJobParams(out.job, {});
    if (check.ok) out.params = {};
    else for (const p of check.problems) say('params', `${p} (params is required for job ${out.job})`);
  }

  const take = <K extends keyof SchedulePatch>(field: string, key: K, dflt: SchedulePatch[K] | undefined) => {
    if (valid(field)) out[key] = (raw[field] ?? null) as SchedulePatch[K];
    else if (!partial && !Object.hasOwn(raw, field) && dflt !== undefined) out[key] = dflt;
  };
  take('overlap', 'overlap', SCHEDULE_DEFAULTS.overlap);
  take('missed', 'missed', SCHEDULE_DEFAULTS.missed);
  take('status', 'status', 'active');
  take('catchup_window_seconds', 'catchupWindowSeconds', SCHEDULE_DEFAULTS.catchupWindowSeconds);
  take('catchup_max', 'catchupMax', SCHEDULE_DEFAULTS.catchupMax);
  take('jitter_seconds', 'jitterSeconds', SCHEDULE_DEFAULTS.jitterSeconds);
  take('timeout_seconds', 'timeoutSeconds', null);
  take('max_retries', 'maxRetries', null);
  take('retry_delay_seconds', 'retryDelaySeconds', null);
  take('retry_backoff', 'retryBackoff', null);
  take('paused_reason', 'pausedReason', null);
  if (out.status === 'active') out.pausedReason = null;

  if (valid('after')) {
    const names = [...new Set(r.after!.map((n) => n.trim()))].sort();
    if (names.some((n) => n.length === 0)) say('after', FIELD_PROBLEM.after!(r.after));
    else if (out.name !== undefined && names.includes(out.name)) say('after', `schedule "${out.name}" cannot wait for itself (after)`);
    else out.after = names;
  } else if (!partial && !Object.hasOwn(raw, 'after')) out.after = [];
  if (valid('wait_for')) {
    const seconds = parseWaitFor(r.wait_for!);
    if (seconds === null) say('wait_for', FIELD_PROBLEM.wait_for!(r.wait_for));
    else out.waitForSeconds = seconds;
  } else if (!partial && !Object.hasOwn(raw, 'wait_for')) out.waitForSeconds = SCHEDULE_DEFAULTS.waitForSeconds;

  if (issues.length > 0) return failed(issues);
  return { ok: true, value: out as SchedulePatch | ScheduleDefinition };
}

/** wait_for as seconds: an integer, or a duration like "90m" or "1h"; null when malformed or out of bounds. */
export function parseWaitFor(v: number | string): number | null {
  const seconds = typeof v === 'number' ? v : /^\d+$/.test(v.trim()) ? Number(v.trim()) : parseEvery(v);
  return seconds !== null && Number.isInteger(seconds) && seconds >= WAIT_FOR_BOUNDS.min && seconds <= WAIT_FOR_BOUNDS.max ? seconds : null;
}

function checkTrigger(kind: string, v: unknown, timezone: string, problem: (message: string) => void): ScheduleTrigger | undefined {
  if (kind === 'cron') {
    if (typeof v !== 'string') {
      problem('cron must be a string of 5 fields (minute hour day month weekday) or 6 with seconds first');
      return undefined;
    }
    const pattern = v.trim().replace(/\s+/g, ' ');
    const fields = pattern.split(' ').length;
    if (fields !== 5 && fields !== 6) {
      problem(`cron "${v}" has ${fields} fields; give 5 (minute hour day month weekday) or 6 (seconds first)`);
      return undefined;
    }
    try {
      if (!cronFor(pattern, timezone).nextRun()) {
        problem(`cron "${v}" never fires`);
        return undefined;
      }
    } catch (err) {
      problem(`cron "${v}" is not a valid cron pattern: ${(err as Error).message}`);
      return undefined;
    }
    return { kind: 'cron', cron: pattern };
  }
  if (kind === 'every') {
    const seconds = typeof v === 'string' ? parseEvery(v) : null;
    if (seconds === null || seconds < EVERY_MIN_SECONDS || seconds > EVERY_MAX_SECONDS) {
      problem(`every ${JSON.stringify(v)} must be a number and a unit (s, m, h, d, w, mo), from 1s to 1mo, for example "30s", "5m" or "1d"`);
      return undefined;
    }
    return { kind: 'every', every: (v as string).trim(), everySeconds: seconds };
  }
  if (!Array.isArray(v) || v.length === 0 || v.length > 100) {
    problem('times must be a list of 1 to 100 times of day, for example ["09:00", "18:00"]');
    return undefined;
  }
  const bad = v.filter((x) => typeof x !== 'string' || parseTimeOfDay(x) === null);
  if (bad.length > 0) {
    problem(`times ${bad.map((b) => JSON.stringify(b)).join(', ')} must be HH:MM or HH:MM:SS (24-hour), for example "09:00"`);
    return undefined;
  }
  const unique = [...new Set(v as string[])].sort();
  if (unique.length !== v.length) {
    problem('times must not repeat a time');
    return undefined;
  }
  return { kind: 'times', times: unique };
}

/** Applies a PATCH to a definition and checks what the fields say together. */
export function mergeSchedulePatch(current: ScheduleDefinition, patch: SchedulePatch): ScheduleValidation<ScheduleDefinition> {
  const merged: ScheduleDefinition = { ...current, ...patch };
  if (merged.status === 'active') merged.pausedReason = null;
  const issues: FieldIssue[] = [];
  if (merged.after.includes(merged.name)) issues.push({ field: 'after', message: `schedule "${merged.name}" cannot wait for itself (after)` });
  if (merged.trigger.kind === 'cron') {
    try {
      cronFor(merged.trigger.cron, merged.timezone);
    } catch (err) {
      issues.push({ field: 'cron', message: `cron "${merged.trigger.cron}" is not valid in ${merged.timezone}: ${(err as Error).message}` });
    }
  }
  // A new job without new params keeps the stored params only if they still fit.
  const check = checkJobParams(merged.job, merged.params);
  if (check.ok) merged.params = check.value as object;
  else for (const p of check.problems) issues.push({ field: 'params', message: `${p} (for job ${merged.job})` });
  return issues.length > 0 ? failed(issues) : { ok: true, value: merged };
}

/** A definition in the schema's shape (snake_case, as the api and the CLI take it). */
export function scheduleInputOf(def: ScheduleDefinition): Record<string, unknown> {
  const t = def.trigger;
  return {
    name: def.name,
    job: def.job,
    ...(t.kind === 'cron' ? { cron: t.cron } : t.kind === 'every' ? { every: t.every } : { times: t.times }),
    timezone: def.timezone,
    params: def.params,
    overlap: def.overlap,
    missed: def.missed,
    catchup_window_seconds: def.catchupWindowSeconds,
    catchup_max: def.catchupMax,
    jitter_seconds: def.jitterSeconds,
    timeout_seconds: def.timeoutSeconds,
    max_retries: def.maxRetries,
    retry_delay_seconds: def.retryDelaySeconds,
    retry_backoff: def.retryBackoff,
    status: def.status,
    paused_reason: def.pausedReason,
    after: def.after,
    wait_for: def.waitForSeconds,
  };
}

/**
 * Checks a stored definition before the engine runs it: rows written by hand in
 * SQL bypass the api and the CLI, so the engine applies the same schema and
 * checks (validateScheduleInput) to what it reads. An empty list means it can run.
 */
export function checkScheduleDefinition(def: ScheduleDefinition): string[] {
  const check = validateScheduleInput(scheduleInputOf(def));
  const problems = check.ok ? [] : [...check.problems];
  // The interval in seconds is stored beside its text: the engine runs on the number.
  const t = def.trigger;
  if (t.kind === 'every' && !(t.everySeconds >= EVERY_MIN_SECONDS && t.everySeconds <= EVERY_MAX_SECONDS)) problems.push(`every "${t.every}" must be from 1s to 1mo`);
  return problems;
}
