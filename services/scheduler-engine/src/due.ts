import { jitterMs, nextOccurrences, planDue, type Schedule } from '@wombat/core/schedules';
import type { Decision } from './publish.ts';

/** An active schedule as the engine tracks it. */
export interface Slot {
  s: Schedule;
  /** Consecutive failed publications, for the retry backoff. */
  failures: number;
  /** Every occurrence at or before this instant has been handled. */
  cursorMs: number;
  next: Date | undefined;
  /** When the next occurrence is due: the occurrence plus its jitter. */
  fireAtMs: number;
  /** The catch-up plan of a backlog longer than one pass, while it is being worked through. */
  backlog?: BacklogPlan | undefined;
}

/** The slot's next occurrence after its cursor, and when it fires (the occurrence plus its jitter). */
export function computeNext(slot: Slot): void {
  const [next, following] = nextOccurrences(slot.s, new Date(slot.cursorMs), slot.s.jitterSeconds > 0 ? 2 : 1);
  slot.next = next;
  slot.fireAtMs = next ? next.getTime() + jitterMs(slot.s.id, slot.s.jitterSeconds, next, following) : Infinity;
}

/** Occurrences examined per schedule per pass; a longer backlog continues on the next pass (planned as a whole by planBacklog). */
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

/**
 * The catch-up plan of a backlog longer than one pass: which of its occurrences
 * are published (the rest are missed), decided once for the whole backlog, so
 * `missed: once` publishes one occurrence and `missed: all` at most catchup_max
 * however many passes the backlog takes. Occurrences are scanned without being
 * kept; only the last ones (enough for the cap) are planned with planDue.
 */
export interface BacklogPlan {
  /** The last occurrence the plan covers. */
  untilMs: number;
  publish: Set<number>;
  /** For the missed rows: the instants planDue called older than the window, with their reasons. */
  reasons: Map<number, string>;
  defaultReason: string;
  windowStartMs: number;
  windowReason: string;
}

export function planBacklog(s: Schedule, cursorMs: number, nowMs: number, graceMs: number): BacklogPlan {
  const keep = Math.max(MAX_DUE_PER_PASS, s.catchupMax + 1);
  let tail: { at: Date; fireAt: Date }[] = [];
  let after = cursorMs;
  for (;;) {
    const chunk = dueOccurrences(s, after, nowMs);
    if (chunk.length === 0) break;
    tail = tail.concat(chunk).slice(-keep);
    after = chunk.at(-1)!.at.getTime();
    if (chunk.length < MAX_DUE_PER_PASS) break;
  }
  const planned = planDue(tail, nowMs, graceMs, s);
  const publish = new Set<number>();
  const reasons = new Map<number, string>();
  let defaultReason = 'missed while the engine could not publish';
  for (const p of planned) {
    if (p.action === 'publish') publish.add(p.at.getTime());
    else {
      reasons.set(p.at.getTime(), p.reason);
      if (!/catch-up window/.test(p.reason)) defaultReason = p.reason;
    }
  }
  return {
    untilMs: after,
    publish,
    reasons,
    defaultReason,
    windowStartMs: nowMs - s.catchupWindowSeconds * 1000,
    windowReason: `older than the catch-up window of ${s.catchupWindowSeconds}s`,
  };
}

/** A slot's due occurrences and what to do with each; undefined (next recomputed) when none is due after all. */
export function planSlot(slot: Slot, nowMs: number, graceMs: number): DueGroup | undefined {
  const s = slot.s;
  const due = dueOccurrences(s, slot.cursorMs, nowMs);
  if (due.length === 0) {
    computeNext(slot);
    return undefined;
  }
  // A backlog longer than one pass is planned as a whole, once, and followed pass after pass.
  if (slot.backlog && slot.backlog.untilMs <= slot.cursorMs) slot.backlog = undefined;
  if (!slot.backlog && due.length === MAX_DUE_PER_PASS) slot.backlog = planBacklog(s, slot.cursorMs, nowMs, graceMs);
  const plan = slot.backlog;
  const inPlan = plan ? due.filter((d) => d.at.getTime() <= plan.untilMs) : [];
  const rest = plan ? due.filter((d) => d.at.getTime() > plan.untilMs) : due;
  const fromPlan = inPlan.map((d) => {
    const ms = d.at.getTime();
    if (plan!.publish.has(ms)) return { at: d.at, action: 'publish' as const, late: true };
    const reason = plan!.reasons.get(ms) ?? (ms < plan!.windowStartMs ? plan!.windowReason : plan!.defaultReason);
    return { at: d.at, action: 'missed' as const, reason };
  });
  const planned = [...fromPlan, ...planDue(rest, nowMs, graceMs, s)];
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
