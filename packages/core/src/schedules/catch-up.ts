import type { MissedPolicy } from './types.ts';

/**
 * What to do with the occurrences that are due: publish them, or record them as
 * missed. Pure: the engine passes the due occurrences and the database-clock now.
 */
export interface DueOccurrence {
  /** The nominal occurrence instant (the run's scheduled_for). */
  at: Date;
  /** When it was meant to be published: the occurrence plus its jitter. */
  fireAt: Date;
}

export type PlannedOccurrence =
  | { at: Date; action: 'publish'; late: boolean }
  | { at: Date; action: 'missed'; reason: string };

export interface CatchUpPolicy {
  missed: MissedPolicy;
  catchupWindowSeconds: number;
  catchupMax: number;
}

/**
 * An occurrence is on time when it is handled within `graceMs` of its fire
 * instant; on-time occurrences are always published. Late ones (engine down,
 * Postgres down, event loop blocked) follow the schedule's policy:
 *  - older than the catch-up window: missed;
 *  - skip: missed;
 *  - once: the latest one is published unless an on-time one already is, the
 *    others are missed;
 *  - all: the latest `catchupMax` are published, the older ones are missed.
 * `due` must be sorted oldest first.
 */
export function planDue(due: DueOccurrence[], nowMs: number, graceMs: number, policy: CatchUpPolicy): PlannedOccurrence[] {
  const windowStart = nowMs - policy.catchupWindowSeconds * 1000;
  const onTime = due.filter((d) => nowMs - d.fireAt.getTime() <= graceMs);
  const late = due.filter((d) => nowMs - d.fireAt.getTime() > graceMs);
  const out: PlannedOccurrence[] = [];
  const inWindow: DueOccurrence[] = [];
  for (const d of late) {
    if (d.at.getTime() < windowStart) out.push({ at: d.at, action: 'missed', reason: `older than the catch-up window of ${policy.catchupWindowSeconds}s` });
    else inWindow.push(d);
  }
  let publishLate: DueOccurrence[] = [];
  if (policy.missed === 'once' && onTime.length === 0) publishLate = inWindow.slice(-1);
  else if (policy.missed === 'all') publishLate = inWindow.slice(-policy.catchupMax);
  const publishSet = new Set(publishLate);
  for (const d of inWindow) {
    if (publishSet.has(d)) out.push({ at: d.at, action: 'publish', late: true });
    else out.push({ at: d.at, action: 'missed', reason: missedReason(policy, onTime.length > 0) });
  }
  for (const d of onTime) out.push({ at: d.at, action: 'publish', late: false });
  return out.sort((a, b) => a.at.getTime() - b.at.getTime());
}

function missedReason(policy: CatchUpPolicy, onTimeRun: boolean): string {
  switch (policy.missed) {
    case 'skip':
      return 'missed while the engine could not publish; policy skip';
    case 'once':
      return onTimeRun ? 'missed; policy once, covered by the on-time run' : 'missed; policy once, covered by the latest catch-up run';
    case 'all':
      return `missed; beyond the catch-up cap of ${policy.catchupMax}`;
  }
}
