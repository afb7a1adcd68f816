import { Cron } from 'croner';
import { addDays, instantOfWallTime, wallAsUtcMs, wallFromUtcMs, wallTimeAt } from './time-zone.ts';
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
    c = isUtc(timezone) ? new Cron(pattern, { utcOffset: 0, paused: true }) : new Cron(pattern, { timezone, paused: true });
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
 * DST policy for cron patterns (services/scheduler-engine/README.md, "Time zones and DST"). A pattern whose second,
 * minute and hour fields hold no wildcard (`*` or `?`) names times of day, like
 * `times`: each time it names runs once a day, a time in a spring-forward gap at the
 * gap's end (times that meet there run once) and a time in a fall-back fold at its
 * first instant. A wildcard in any of the three (`*\/15 1-3 * * *`, `30 * * * *`)
 * makes it an interval pattern: it fires at every instant whose wall time matches,
 * so it skips wall times in a gap and fires in both passes of a fold. This is Vixie
 * cron's rule (a job is wild when its minute or hour starts with `*`), extended to
 * seconds and to a wildcard anywhere in a list.
 */
export function cronDstKind(pattern: string): 'fixed-time' | 'interval' {
  const fields = pattern.trim().split(/\s+/);
  const timeFields = fields.length >= 6 ? fields.slice(0, 3) : fields.slice(0, 2);
  return timeFields.some((f) => /[*?]/.test(f)) ? 'interval' : 'fixed-time';
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
    // croner follows the timeline for every pattern with a wildcard in its time fields (its
    // fixedTimeRule cannot cover steps without one, so fixed times are walked here).
    next = isUtc(timezone) || cronDstKind(pattern) === 'interval' ? cronerNextMs(cronFor(pattern, timezone), afterMs) : fixedTimeNextMs(pattern, timezone, afterMs);
    if (cronSteps.size >= 50_000) cronSteps.clear();
    cronSteps.set(key, next);
  }
  return next;
}

function isUtc(timezone: string): boolean {
  return timezone === 'UTC' || timezone === 'Etc/UTC';
}

/** croner's next run strictly after `afterMs`; croner itself works in whole seconds from its start. */
function cronerNextMs(cron: Cron, afterMs: number): number | null {
  let prev = new Date(afterMs);
  for (let guard = 0; guard < 3; guard++) {
    const d = cron.nextRun(prev);
    if (!d) return null;
    if (d.getTime() > afterMs) return d.getTime();
    prev = d;
  }
  return null;
}

/**
 * A fixed-time pattern walks the wall clock, not the timeline: croner matches it on
 * the zone's wall times (held as if they were UTC, so croner sees no DST), and each
 * matching wall time becomes an instant by instantOfWallTime (gap end, first of a
 * fold). That mapping never goes backwards, so the first wall time after the wall
 * time at `after` that lands strictly after `after` is the next occurrence; times a
 * gap maps onto one instant, or a fold onto passed instants, are stepped over.
 */
function fixedTimeNextMs(pattern: string, timezone: string, afterMs: number): number | null {
  const wallClock = cronFor(pattern, 'UTC');
  let cursor = wallAsUtcMs(wallTimeAt(afterMs, timezone));
  // At most the matching seconds of one fold (3,600 in an hour) are stepped over.
  for (let guard = 0; guard < 100_000; guard++) {
    const d = wallClock.nextRun(new Date(cursor));
    if (!d) return null;
    const wall = d.getTime();
    const at = instantOfWallTime(wallFromUtcMs(wall), timezone);
    if (at > afterMs) return at;
    cursor = Math.max(wall, cursor + 1000);
  }
  return null;
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

/** Parsed, sorted times of day per `times` list: a schedule keeps its list, so each is parsed once. */
const parsedTimes = new WeakMap<string[], { hour: number; minute: number; second: number }[]>();

function timesOfDay(times: string[]): { hour: number; minute: number; second: number }[] {
  let parsed = parsedTimes.get(times);
  if (!parsed) {
    parsed = times.map(parseTimeOfDay).filter((x): x is NonNullable<typeof x> => x !== null);
    parsed.sort((a, b) => a.hour * 3600 + a.minute * 60 + a.second - (b.hour * 3600 + b.minute * 60 + b.second));
    parsedTimes.set(times, parsed);
  }
  return parsed;
}

function nextTimesOfDay(times: string[], timezone: string, afterMs: number, count: number): Date[] {
  const parsed = timesOfDay(times);
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
