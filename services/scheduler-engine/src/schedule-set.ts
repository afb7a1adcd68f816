import type { Logger } from '@wombat/core/platform';
import { checkScheduleDefinition, type Schedule } from '@wombat/core/schedules';
import { computeNext, dueOccurrences, MAX_DUE_PER_PASS, type Slot } from './due.ts';
import type { Decision } from './publish.ts';

export type ScheduleSet = ReturnType<typeof createScheduleSet>;

/**
 * The schedules an engine follows, by id. A stored row is applied only when its
 * version changed; paused and invalid ones are known but have no slot.
 */
export function createScheduleSet(log: Logger) {
  const slots = new Map<number, Slot>();
  const versions = new Map<number, number>();
  const invalid = new Map<number, number>();

  const missedOnChange: Decision[] = [];

  function apply(s: Schedule): void {
    if (versions.get(s.id) === s.version) return;
    versions.set(s.id, s.version);
    const old = slots.get(s.id);
    slots.delete(s.id);
    if (old) {
      // Occurrences of the old definition that came before the edit (or pause) and were not
      // handled yet: recorded as missed, not dropped. Bounded; the rest are status, not work.
      const before = dueOccurrences(old.s, old.cursorMs, s.updatedAt.getTime()).slice(0, MAX_DUE_PER_PASS);
      for (const d of before) {
        missedOnChange.push({ schedule: old.s, at: d.at, action: 'missed', reason: 'missed: the schedule was edited or paused before this occurrence was published', nextAt: undefined });
      }
    }
    if (s.status !== 'active') return;
    const problems = checkScheduleDefinition(s);
    if (problems.length > 0) {
      if (invalid.get(s.id) !== s.version) log.error({ scheduleId: s.id, name: s.name, problems }, 'schedule is invalid and will not run until fixed');
      invalid.set(s.id, s.version);
      return;
    }
    invalid.delete(s.id);
    // No catch-up for time before the definition (or its status) last changed.
    const cursorMs = Math.max(s.lastRunAt?.getTime() ?? 0, s.updatedAt.getTime(), old?.cursorMs ?? 0);
    const slot: Slot = { s, cursorMs, failures: 0, next: undefined, fireAtMs: Infinity };
    try {
      computeNext(slot);
    } catch (err) {
      log.error({ err, scheduleId: s.id, name: s.name }, 'schedule has no computable occurrence');
      return;
    }
    slots.set(s.id, slot);
  }

  function forget(scheduleId: number): void {
    slots.delete(scheduleId);
    versions.delete(scheduleId);
    invalid.delete(scheduleId);
  }

  /** Takes the missed occurrences found by edits since the last call, for the next pass to record. */
  function takeMissedOnChange(): Decision[] {
    return missedOnChange.splice(0, missedOnChange.length);
  }

  return { slots, apply, forget, knownIds: () => [...versions.keys()], takeMissedOnChange, hasMissedOnChange: () => missedOnChange.length > 0 };
}
