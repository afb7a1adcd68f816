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

/** The wall time at `instantMs` in `timeZone` (whole seconds). */
export function wallTimeAt(instantMs: number, timeZone: string): WallTime {
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

/** Offset of `timeZone` from UTC at `instantMs`, in ms (Seoul: +9 h). */
export function offsetMsAt(instantMs: number, timeZone: string): number {
  const whole = Math.floor(instantMs / 1000) * 1000;
  return wallAsUtcMs(wallTimeAt(whole, timeZone)) - whole;
}

const DAY_MS = 86_400_000;

/**
 * The instant a wall time names in `timeZone`. Defined for DST: a wall time that
 * occurs twice (fall-back fold) maps to its first instant; one that never occurs
 * (spring-forward gap) maps to the gap's end, the first instant after the jump.
 */
export function instantOfWallTime(w: WallTime, timeZone: string): number {
  const local = wallAsUtcMs(w);
  // Offsets a day either side cover any single transition near this wall time.
  const offsets = new Set([offsetMsAt(local - DAY_MS, timeZone), offsetMsAt(local, timeZone), offsetMsAt(local + DAY_MS, timeZone)]);
  const valid = [...offsets].map((o) => local - o).filter((c) => offsetMsAt(c, timeZone) === local - c).sort((a, b) => a - b);
  if (valid.length > 0) return valid[0]!;
  // In a gap: the transition lies between the candidates; find it by bisection.
  const candidates = [...offsets].map((o) => local - o).sort((a, b) => a - b);
  let lo = candidates[0]!;
  let hi = candidates.at(-1)!;
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
