import { jitterMs, nextOccurrences, planDue, type Schedule } from '@wombat/core';
import type { Decision } from './publish.ts';
import { computeNext, type Slot } from './schedule-set.ts';

/** Occurrences examined per schedule per pass; a longer backlog continues on the next pass. */
export const MAX_DUE_PER_PASS = 1000;

/**
 * Occurrences after the cursor whose fire instant (occurrence plus jitter) has
 * come, oldest first, at most MAX_DUE_PER_PASS. Fetched in growing chunks: the
 * usual case is one or two.
 */
export function dueOccurrences(s: Schedule, cursorMs: number, nowMs: number): { at: Date; fireAt: Date; next: Date | undefined }[] {
  const out: { at: Date; fireAt: Date; next: Date | undefined }[] = [];
  let chunk = 2;
  let buf = nextOccurrences(s, new Date(cursorMs), chunk);
  for (;;) {
    for (let i = 0; i < buf.length; i++) {
      const at = buf[i]!;
      const next = buf[i + 1];
      if (next === undefined && buf.length === chunk) break; // fetch more to know the next one
      const fireAt = at.getTime() + jitterMs(s.id, s.jitterSeconds, at, next);
      if (fireAt > nowMs) return out;
      out.push({ at, fireAt: new Date(fireAt), next });
      if (out.length >= MAX_DUE_PER_PASS) return out;
    }
    if (buf.length < chunk) return out;
    chunk = Math.min(chunk * 4, MAX_DUE_PER_PASS + 1);
    buf = nextOccurrences(s, buf.at(-2)!, chunk);
  }
}

/** One schedule's due occurrences in a pass, and the cursor they advance it to. */
export interface DueGroup {
  slot: Slot;
  cursorMs: number;
  decisions: Decision[];
}

/** A slot's due occurrences and what to do with each; undefined (next recomputed) when none is due after all. */
export function planSlot(slot: Slot, nowMs: number, graceMs: number): DueGroup | undefined {
  const s = slot.s;
  const due = dueOccurrences(s, slot.cursorMs, nowMs);
  if (due.length === 0) {
    computeNext(slot);
    return undefined;
  }
  const planned = planDue(due, nowMs, graceMs, s);
  const following = new Map(due.map((d) => [d.at.getTime(), d.next]));
  const decisions: Decision[] = planned.map((p) => ({
    schedule: s,
    at: p.at,
    action: p.action,
    ...(p.action === 'missed' ? { reason: p.reason } : {}),
    nextAt: following.get(p.at.getTime()),
  }));
  return { slot, cursorMs: due.at(-1)!.at.getTime(), decisions };
}
