/**
 * Wall-clock maths in IANA time zones, pure (no clock reads). Intl formatters
 * are cached per zone because creating one costs far more than using it.
 */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

export interface WallTime {
  year: number;
  /** 1-12 */
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

export function isTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

/** UTC needs no Intl: its wall time is the instant's UTC fields, its offset always 0. */
function isUtcZone(timeZone: string): boolean {
  return timeZone === 'UTC' || timeZone === 'Etc/UTC';
}

/** The wall time at `instantMs` in `timeZone` (whole seconds). */
export function wallTimeAt(instantMs: number, timeZone: string): WallTime {
  if (isUtcZone(timeZone)) return wallFromUtcMs(instantMs);
  const parts = formatter(timeZone).formatToParts(new Date(instantMs));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  return { year: get('year'), month: get('month'), day: get('day'), hour: get('hour'), minute: get('minute'), second: get('second') };
}

/** A wall time read as if it were UTC: wall-clock arithmetic without DST. */
export function wallAsUtcMs(w: WallTime): number {
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
}

/** The inverse of wallAsUtcMs (whole seconds). */
export function wallFromUtcMs(ms: number): WallTime {
  const d = new Date(ms);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() };
}

/**
 * Offsets already computed, per zone and whole second. An engine with thousands of
 * schedules asks for the same few instants (the days around each time of day) over
 * and over, and each Intl lookup costs ~25 us and a dozen short-lived objects: at
 * 10,000 schedules that was seconds of CPU and ~150 MiB of transient heap per
 * reconcile. Bounded per zone, cleared when full.
 */
const offsetCache = new Map<string, Map<number, number>>();
const OFFSET_CACHE_ENTRIES = 10_000;

/** Offset of `timeZone` from UTC at `instantMs`, in ms (Seoul: +9 h). */
export function offsetMsAt(instantMs: number, timeZone: string): number {
  if (isUtcZone(timeZone)) return 0;
  const whole = Math.floor(instantMs / 1000) * 1000;
  let zone = offsetCache.get(timeZone);
  if (!zone) {
    zone = new Map();
    offsetCache.set(timeZone, zone);
  }
  let offset = zone.get(whole);
  if (offset === undefined) {
    offset = wallAsUtcMs(wallTimeAt(whole, timeZone)) - whole;
    if (zone.size >= OFFSET_CACHE_ENTRIES) zone.clear();
    zone.set(whole, offset);
  }
  return offset;
}

const DAY_MS = 86_400_000;

/**
 * The instant a wall time names in `timeZone`. Defined for DST: a wall time that
 * occurs twice (fall-back fold) maps to its first instant; one that never occurs
 * (spring-forward gap) maps to the gap's end, the first instant after the jump.
 */
export function instantOfWallTime(w: WallTime, timeZone: string): number {
  const local = wallAsUtcMs(w);
  if (isUtcZone(timeZone)) return local;
  // Offsets a day either side cover any single transition near this wall time. The
  // earliest candidate instant that shows this wall time wins (first of a fold).
  // Written without arrays: engines call this for every schedule they load.
  const c1 = local - offsetMsAt(local - DAY_MS, timeZone);
  const c2 = local - offsetMsAt(local, timeZone);
  const c3 = local - offsetMsAt(local + DAY_MS, timeZone);
  let first = Infinity;
  if (offsetMsAt(c1, timeZone) === local - c1) first = c1;
  if (c2 < first && offsetMsAt(c2, timeZone) === local - c2) first = c2;
  if (c3 < first && offsetMsAt(c3, timeZone) === local - c3) first = c3;
  if (first !== Infinity) return first;
  // In a gap: the transition lies between the candidates; find it by bisection.
  let lo = Math.min(c1, c2, c3);
  let hi = Math.max(c1, c2, c3);
  const before = offsetMsAt(lo, timeZone);
  while (hi - lo > 1000) {
    const mid = Math.floor((lo + hi) / 2000) * 1000;
    if (offsetMsAt(mid, timeZone) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** The calendar day after (or `days` after) a wall date; time fields kept. */
export function addDays(w: WallTime, days: number): WallTime {
  const d = new Date(Date.UTC(w.year, w.month - 1, w.day + days));
  return { ...w, year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}
