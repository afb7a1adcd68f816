/**
 * A request budget as the exchanges state it: for every (limit, window) at most
 * `limit` requests in any window of `windowMs` (Upbit: 10 per second and 600 per
 * minute per IP and group; KIS: 18 per second per app key on a real account, 1 on
 * a mock one). The strictest reading of "N per window": a sliding log, so a
 * server counting fixed windows or sliding ones never sees more than it allows.
 *
 * The server counts a request when it arrives, which we cannot see: it lies
 * between the grant and the answer. So a granted request holds its place while
 * in flight (dated grant + holdMs, a time in the future) and is re-dated by the
 * moment its answer came back (`settleSlots`). The next request that place allows
 * is granted a window later, and so arrives more than a window after the first
 * did, whatever the latency. A process that dies mid-request frees its places
 * after holdMs.
 *
 * Pure functions of `now` (ms). The local store runs them in memory; the
 * PostgreSQL store runs the same algorithm in wombat.budget_take (migration 0005).
 */
export interface BudgetLimit {
  limit: number;
  windowMs: number;
}

export interface BudgetSpec {
  limits: BudgetLimit[];
  /** Longest a request can be in flight (its deadline); a dead process's places free after it. */
  holdMs: number;
  /** Added to every window, for clock granularity. */
  marginMs?: number;
  /** How soon to look again when every place is held by a request still in flight. */
  pollMs?: number;
}

export interface BudgetBlock {
  /** ms since the epoch, store clock */
  untilMs: number;
  code: string;
  message: string;
}

export interface BudgetState {
  usedMs: number[];
  pausedUntilMs: number;
  pause?: { code: string; message: string };
  bannedUntilMs: number;
  ban?: { code: string; message: string };
}

export type TakeResult =
  | { granted: number; stamp: number; waitMs: 0 }
  | { granted: 0; stamp: 0; waitMs: number; ban?: BudgetBlock; pause?: BudgetBlock };

export const DEFAULT_MARGIN_MS = 5;
export const DEFAULT_POLL_MS = 25;

export function emptyBudget(): BudgetState {
  return { usedMs: [], pausedUntilMs: 0, bannedUntilMs: 0 };
}

export function checkSpec(spec: BudgetSpec): void {
  if (spec.limits.length === 0) throw new RangeError('a budget needs at least one limit');
  for (const l of spec.limits) {
    if (!Number.isInteger(l.limit) || l.limit < 1 || !(l.windowMs > 0)) throw new RangeError(`budget limit ${l.limit} per ${l.windowMs} ms: needs a whole limit >= 1 and windowMs > 0`);
  }
  if (!(spec.holdMs > 0)) throw new RangeError('budget holdMs must be > 0');
}

/** Grants up to `n` requests at `now`, or says how long to wait and why. Mutates `state`. */
export function takeSlots(state: BudgetState, spec: BudgetSpec, n: number, now: number): TakeResult {
  if (state.bannedUntilMs > now) {
    return { granted: 0, stamp: 0, waitMs: state.bannedUntilMs - now, ban: { untilMs: state.bannedUntilMs, code: state.ban?.code ?? 'banned', message: state.ban?.message ?? '' } };
  }
  if (state.pausedUntilMs > now) {
    return { granted: 0, stamp: 0, waitMs: state.pausedUntilMs - now, pause: { untilMs: state.pausedUntilMs, code: state.pause?.code ?? 'paused', message: state.pause?.message ?? '' } };
  }
  const margin = spec.marginMs ?? DEFAULT_MARGIN_MS;
  const maxWindow = Math.max(...spec.limits.map((l) => l.windowMs));
  state.usedMs = state.usedMs.filter((t) => t + maxWindow + margin > now).sort((a, b) => a - b);
  let k = n;
  let wait = 0;
  let inFlight = false;
  for (const l of spec.limits) {
    const counting = state.usedMs.filter((t) => t + l.windowMs + margin > now);
    const free = l.limit - counting.length;
    k = Math.min(k, free);
    if (free <= 0) {
      // The request that must leave this window before one more may start.
      const blocker = counting[-free]!;
      if (blocker > now) inFlight = true;
      else wait = Math.max(wait, blocker + l.windowMs + margin - now);
    }
  }
  if (k <= 0) {
    const poll = spec.pollMs ?? DEFAULT_POLL_MS;
    if (inFlight) wait = wait > 0 ? Math.min(wait, poll) : poll;
    return { granted: 0, stamp: 0, waitMs: Math.max(wait, 1) };
  }
  const stamp = now + spec.holdMs;
  for (let i = 0; i < k; i++) state.usedMs.push(stamp);
  return { granted: k, stamp, waitMs: 0 };
}

/** Up to `count` requests granted with `stamp` got their answer at `now` (or, unused, never went out). */
export function settleSlots(state: BudgetState, stamp: number, count: number, now: number, unused = false): void {
  let left = count;
  const out: number[] = [];
  for (const t of state.usedMs) {
    if (left > 0 && t === stamp) {
      left--;
      if (!unused) out.push(now);
    } else out.push(t);
  }
  state.usedMs = out;
}

export type BlockKind = 'ban' | 'pause';

/** Records a ban or a pause from `now` for `ms`; never shortens one in force. */
export function blockBudget(state: BudgetState, kind: BlockKind, ms: number, code: string, message: string, now: number): void {
  const until = now + ms;
  if (kind === 'ban' && state.bannedUntilMs < until) {
    state.bannedUntilMs = until;
    state.ban = { code, message };
  }
  if (kind === 'pause' && state.pausedUntilMs < until) {
    state.pausedUntilMs = until;
    state.pause = { code, message };
  }
}
