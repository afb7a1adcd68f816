import { nextOccurrences } from './occurrences.ts';
import { addDays, instantOfWallTime, wallTimeAt, type WallTime } from './time-zone.ts';
import type { ScheduleDefinition } from './types.ts';

/**
 * Dependency maths: pure functions of definitions and an instant. An occurrence of
 * a schedule with prerequisites (after) runs once each prerequisite's run for the
 * same logical period has completed; the run that decides is the latest run of the
 * prerequisite (any trigger) whose scheduled_for lies in the period.
 */
type TriggerDef = Pick<ScheduleDefinition, 'trigger' | 'timezone'>;

/** The instants a prerequisite's run may be scheduled for to count, both ends included. */
export interface DependencyPeriod {
  from: Date;
  to: Date;
  /** day: the occurrence's local day; occurrence: from the prerequisite's latest occurrence at or before it. */
  kind: 'day' | 'occurrence';
}

const DAY_MS = 86_400_000;

const startOfDay = (w: WallTime): WallTime => ({ ...w, hour: 0, minute: 0, second: 0 });
const sameDate = (a: WallTime, b: WallTime) => a.year === b.year && a.month === b.month && a.day === b.day;

/**
 * True when the schedule fires once on each local day around `at` (a cron or
 * times firing once a day, every 1d): judged from its occurrences over the two
 * weeks around `at`, so DST days count like the others.
 */
export function firesOncePerDay(def: TriggerDef, at: Date): boolean {
  const list = nextOccurrences(def, new Date(at.getTime() - 8 * DAY_MS), 16);
  if (list.length < 15) return false;
  for (let i = 1; i < list.length; i++) {
    const prev = wallTimeAt(list[i - 1]!.getTime(), def.timezone);
    if (!sameDate(addDays(prev, 1), wallTimeAt(list[i]!.getTime(), def.timezone))) return false;
  }
  return true;
}

/** The latest occurrence of `def` at or before `at`, looking back at most 400 days; undefined if none. */
export function latestOccurrenceAtOrBefore(def: TriggerDef, at: Date): Date | undefined {
  const atMs = at.getTime();
  for (const lookbackMs of [60_000, 3_600_000, DAY_MS, 32 * DAY_MS, 400 * DAY_MS]) {
    let after = new Date(atMs - lookbackMs);
    let latest: Date | undefined;
    for (;;) {
      const chunk = nextOccurrences(def, after, 500);
      const upTo = chunk.filter((d) => d.getTime() <= atMs);
      if (upTo.length > 0) latest = upTo.at(-1);
      if (upTo.length < chunk.length || chunk.length < 500) break;
      after = chunk.at(-1)!;
    }
    if (latest) return latest;
  }
  return undefined;
}

/**
 * The period of `occurrence` (of `waiter`) in which a run of `prerequisite`
 * counts: the occurrence's local day (midnight to midnight in its time zone, which
 * the prerequisite shares) for a schedule that fires once a day; otherwise from
 * the prerequisite's latest occurrence at or before it, up to the occurrence.
 * Undefined when the prerequisite has no occurrence to go by (nothing will
 * complete the period: the run waits out its window).
 */
export function dependencyPeriod(waiter: TriggerDef, prerequisite: TriggerDef, occurrence: Date): DependencyPeriod | undefined {
  if (firesOncePerDay(waiter, occurrence)) {
    const day = startOfDay(wallTimeAt(occurrence.getTime(), waiter.timezone));
    const from = instantOfWallTime(day, waiter.timezone);
    const to = instantOfWallTime(addDays(day, 1), waiter.timezone) - 1;
    return { from: new Date(from), to: new Date(to), kind: 'day' };
  }
  const latest = latestOccurrenceAtOrBefore(prerequisite, occurrence);
  return latest ? { from: latest, to: occurrence, kind: 'occurrence' } : undefined;
}
