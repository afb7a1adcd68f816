import { Cron } from 'croner';
import { addDays, instantOfWallTime, wallTimeAt } from './time-zone.ts';
import type { ScheduleDefinition, ScheduleTrigger } from './types.ts';

/**
 * Occurrence maths: pure functions of a definition and an instant. The engine
 * and the api's preview both use these, so they always agree.
 */
type TriggerDef = Pick<ScheduleDefinition, 'trigger' | 'timezone'>;

const crons = new Map<string, Cron>();

/** A paused croner instance per (pattern, zone): a pattern parser, never a timer. */
export function cronFor(pattern: string, timezone: string): Cron {
  const key = `${timezone}\u0000${pattern}`;
  let c = crons.get(key);
  if (!c) {
    // croner converts through Intl for a named zone (~50-80 us a step); a plain UTC offset is ~15x faster.
    c = timezone === 'UTC' || timezone === 'Etc/UTC' ? new Cron(pattern, { utcOffset: 0, paused: true }) : new Cron(pattern, { timezone, paused: true });
    if (crons.size > 20_000) crons.clear();
    crons.set(key, c);
  }
  return c;
}

/** Occurrences strictly after `after`, at most `count`. */
export function nextOccurrences(def: TriggerDef, after: Date, count: number): Date[] {
  if (count <= 0) return [];
  const t = def.trigger;
  const afterMs = after.getTime();
  switch (t.kind) {
    case 'cron': {
      const out: Date[] = [];
      let prev = afterMs;
      while (out.length < count) {
        const next = cronNextMs(t.cron, def.timezone, prev);
        if (next === null) break;
        out.push(new Date(next));
        prev = next;
      }
      return out;
    }
    case 'every': {
      const stepMs = t.everySeconds * 1000;
      const anchor = everyAnchorMs(def.timezone);
      const k = Math.floor((afterMs - anchor) / stepMs) + 1;
      return Array.from({ length: count }, (_, i) => new Date(anchor + (k + i) * stepMs));
    }
    case 'times':
      return nextTimesOfDay(t.times, def.timezone, afterMs, count);
  }
}

/**
 * Schedules sharing a pattern (every second, hourly...) ask for the same steps at
 * the same instants, so steps are memoised; bounded, cleared when full.
 */
const cronSteps = new Map<string, number | null>();

function cronNextMs(pattern: string, timezone: string, afterMs: number): number | null {
  const key = `${timezone}\u0000${pattern}\u0000${afterMs}`;
  let next = cronSteps.get(key);
  if (next === undefined) {
    const cron = cronFor(pattern, timezone);
    let prev = new Date(afterMs);
    next = null;
    // croner works in whole seconds from `prev`; keep the result strictly after.
    for (let guard = 0; guard < 3; guard++) {
      const d = cron.nextRun(prev);
      if (!d) break;
      if (d.getTime() > afterMs) {
        next = d.getTime();
        break;
      }
      prev = d;
    }
    if (cronSteps.size >= 50_000) cronSteps.clear();
    cronSteps.set(key, next);
  }
  return next;
}

const anchors = new Map<string, number>();

/** 2000-01-01T00:00 wall time in `timezone`: the origin of fixed intervals. */
export function everyAnchorMs(timezone: string): number {
  let a = anchors.get(timezone);
  if (a === undefined) {
    a = instantOfWallTime({ year: 2000, month: 1, day: 1, hour: 0, minute: 0, second: 0 }, timezone);
    anchors.set(timezone, a);
  }
  return a;
}

function nextTimesOfDay(times: string[], timezone: string, afterMs: number, count: number): Date[] {
  const parsed = times.map(parseTimeOfDay).filter((x): x is NonNullable<typeof x> => x !== null);
  parsed.sort((a, b) => a.hour * 3600 + a.minute * 60 + a.second - (b.hour * 3600 + b.minute * 60 + b.second));
  const out: Date[] = [];
  if (parsed.length === 0) return out;
  // Start a day early: the wall date at `after` may already be past some of that day's times.
  let day = addDays(wallTimeAt(afterMs, timezone), -1);
  let last = -Infinity;
  for (let guard = 0; out.length < count && guard < count + 3; guard++) {
    for (const t of parsed) {
      const at = instantOfWallTime({ ...day, hour: t.hour, minute: t.minute, second: t.second }, timezone);
      // `at > last` drops a time a gap folded onto an earlier one of the same day.
      if (at > afterMs && at > last && out.length < count) {
        out.push(new Date(at));
        last = at;
      }
    }
    day = addDays(day, 1);
  }
  return out;
}

/** "09:00" or "09:00:30" -> parts; null when malformed. */
export function parseTimeOfDay(s: string): { hour: number; minute: number; second: number } | null {
  const m = /^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/.exec(s);
  if (!m) return null;
  return { hour: Number(m[1]), minute: Number(m[2]), second: Number(m[3] ?? 0) };
}

const EVERY_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800, mo: 2_592_000 };
export const EVERY_MIN_SECONDS = 1;
/** A month is 30 days here: a fixed interval is elapsed time, not a calendar step. */
export const EVERY_MAX_SECONDS = 2_592_000;

/** "30s", "5m", "1h", "1d", "1w", "1mo" -> seconds; null when malformed. */
export function parseEvery(s: string): number | null {
  const m = /^(\d{1,7})(s|m|h|d|w|mo)$/.exec(s.trim());
  if (!m) return null;
  return Number(m[1]) * EVERY_UNITS[m[2]!]!;
}

export function describeTrigger(def: { trigger: ScheduleTrigger }): string {
  const t = def.trigger;
  switch (t.kind) {
    case 'cron':
      return `cron ${t.cron}`;
    case 'every':
      return `every ${t.every}`;
    case 'times':
      return `at ${t.times.join(', ')}`;
  }
}

/**
 * How long after its occurrence a run is published: a deterministic spread of up
 * to `jitterSeconds` (every engine picks the same instant), always ending before
 * the next occurrence so jitter never reorders or merges occurrences.
 */
export function jitterMs(scheduleId: number, jitterSeconds: number, occurrence: Date, next: Date | undefined): number {
  if (jitterSeconds <= 0) return 0;
  let bound = jitterSeconds * 1000;
  if (next) bound = Math.min(bound, next.getTime() - occurrence.getTime() - 1);
  if (bound <= 0) return 0;
  // FNV-1a over (id, instant): cheap, stable across processes.
  let h = 0x811c9dc5;
  for (const ch of `${scheduleId}:${occurrence.getTime()}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % bound;
}
