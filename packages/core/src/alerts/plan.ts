import { severityRank, type Condition, type Severity } from './types.ts';

/** An open alert as the planner needs it. */
export interface OpenAlert {
  id: number;
  key: string;
  kind: string;
  severity: Severity;
  subject: string;
  message: string;
  details: unknown;
  clearSince: Date | null;
  lastNotifiedAt: Date | null;
  notifiedSeverity: Severity | null;
}

export interface PlanOptions {
  /** Least time between two messages about one open alert; an escalation waits for it. */
  cooldownMs: number;
  /** An alert still open is sent again after this long; 0: never. */
  repeatMs: number;
  /** A condition must stay clear this long before its alert resolves. */
  resolveAfterMs: number;
}

export type AlertAction =
  | { type: 'open'; condition: Condition }
  /** The condition holds: refresh what the alert says; notify when it escalated or is due a repeat. */
  | { type: 'update'; id: number; condition: Condition; notify: 'escalated' | 'repeated' | null }
  /** The condition cleared just now: start the clear period. */
  | { type: 'clearing'; id: number }
  | { type: 'resolve'; id: number };

/**
 * Turns the conditions that hold now and the alerts already open into actions.
 * Pure: `nowMs` is an argument. An open alert whose kind could not be evaluated
 * this pass (its query failed) is left alone rather than resolved.
 *
 * - one alert per key while its condition lasts (de-duplication);
 * - a condition that clears resolves its alert only after `resolveAfterMs` of
 *   staying clear, so a flapping threshold is one alert and one resolved message;
 * - a rise in severity is sent as an escalation once `cooldownMs` has passed
 *   since the last message; an alert still open is sent again every `repeatMs`.
 */
export function planAlerts(open: OpenAlert[], conditions: Condition[], nowMs: number, opts: PlanOptions, unevaluatedKinds: ReadonlySet<string> = new Set()): AlertAction[] {
  const actions: AlertAction[] = [];
  const openByKey = new Map(open.map((a) => [a.key, a]));
  const seen = new Set<string>();
  for (const c of conditions) {
    if (seen.has(c.key)) continue;
    seen.add(c.key);
    const a = openByKey.get(c.key);
    if (!a) {
      actions.push({ type: 'open', condition: c });
      continue;
    }
    const sinceMs = a.lastNotifiedAt ? nowMs - a.lastNotifiedAt.getTime() : Infinity;
    let notify: 'escalated' | 'repeated' | null = null;
    if (severityRank(c.severity) > severityRank(a.notifiedSeverity) && sinceMs >= opts.cooldownMs) notify = 'escalated';
    else if (opts.repeatMs > 0 && sinceMs >= opts.repeatMs) notify = 'repeated';
    const changed =
      a.severity !== c.severity || a.subject !== c.subject || a.message !== c.message || a.clearSince !== null || JSON.stringify(a.details) !== JSON.stringify(c.details);
    if (changed || notify) actions.push({ type: 'update', id: a.id, condition: c, notify });
  }
  for (const a of open) {
    if (seen.has(a.key) || unevaluatedKinds.has(a.kind)) continue;
    if (a.clearSince === null) {
      if (opts.resolveAfterMs === 0) actions.push({ type: 'resolve', id: a.id });
      else actions.push({ type: 'clearing', id: a.id });
    } else if (nowMs - a.clearSince.getTime() >= opts.resolveAfterMs) actions.push({ type: 'resolve', id: a.id });
  }
  return actions;
}

/** A threshold's level: critical above `critical`, warning above `warning`, else none. */
export function levelAbove(value: number, warning: number, critical: number): Severity | null {
  if (value > critical) return 'critical';
  if (value > warning) return 'warning';
  return null;
}

/** Live workers: critical at or below `critical`, warning at or below `warning`. */
export function levelAtOrBelow(value: number, warning: number, critical: number): Severity | null {
  if (value <= critical) return 'critical';
  if (value <= warning) return 'warning';
  return null;
}

/**
 * The longest gap between consecutive occurrences among the next few: the
 * interval a schedule is expected to succeed within (a weekday cron's is the
 * weekend).
 */
export function expectedIntervalMs(occurrences: Date[]): number | null {
  let max = 0;
  for (let i = 1; i < occurrences.length; i++) max = Math.max(max, occurrences[i]!.getTime() - occurrences[i - 1]!.getTime());
  return max > 0 ? max : null;
}
