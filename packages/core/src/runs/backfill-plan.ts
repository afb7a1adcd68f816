import { sql, type Kysely } from 'kysely';
import { checkJobParams, PERIOD_JOBS, takesPeriod } from '../jobs/contracts.ts';
import { AppError, ValidationError, type FieldIssue } from '../platform/errors.ts';
import { nextOccurrences } from '../schedules/occurrences.ts';
import { instantOfWallTime } from '../schedules/time-zone.ts';
import type { Schedule } from '../schedules/types.ts';
import type { RunTables } from './tables.ts';

/**
 * A backfill's plan: the occurrences of a schedule in a past range [from, to), each
 * with the params its run gets (the schedule's plus the occurrence's logical period)
 * and what is already recorded for it. Pure maths on the schedule (occurrences.ts),
 * one read of the runs; the preview (dry run) and the start both use it.
 */

/** Occurrences a backfill takes at most unless the operator raises --max. */
export const BACKFILL_MAX_DEFAULT = 1000;
/** The highest --max: a plan is held in memory and recorded in one transaction. */
const BACKFILL_MAX_LIMIT = 100_000;
/** Child runs queued, running or retrying at once unless the operator says otherwise. */
export const BACKFILL_CONCURRENCY_DEFAULT = 1;
const BACKFILL_CONCURRENCY_LIMIT = 100;

export interface BackfillOptions {
  from: Date;
  to: Date;
  max: number;
  concurrency: number;
  rerun: boolean;
  pauseOnFailure: boolean;
}

export interface BackfillOccurrence {
  /** The schedule of this occurrence: the one backfilled or one of its prerequisites. */
  schedule_id: number;
  schedule: string;
  job: string;
  scheduled_for: string;
  /** The schedule's params plus `period`: {from, to} of this occurrence. */
  params: object;
  /**
   * What is recorded for this occurrence by the schedule's runs: completed (by any), else
   * in_progress (a run of it has not finished), else failed, else none.
   */
  existing: 'completed' | 'in_progress' | 'failed' | 'none';
  /** skip: it completed already and the backfill does not rerun, or a run of it is in progress. */
  action: 'run' | 'skip';
}

const TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * An operator's instant: an ISO time with a zone (Z or an offset) as it is, or a date or a
 * time without one as a wall time in the schedule's time zone (2026-12-01 is that day's
 * midnight there). Null when it is neither.
 */
export function parseBackfillTime(value: string, timezone: string): Date | null {
  const m = TIME.exec(value.trim());
  if (!m) return null;
  if (m[7]) {
    if (m[4] === undefined) return null;
    const ms = Date.parse(value.trim().replace(' ', 'T'));
    return Number.isNaN(ms) ? null : new Date(ms);
  }
  const w = { year: Number(m[1]), month: Number(m[2]), day: Number(m[3]), hour: Number(m[4] ?? 0), minute: Number(m[5] ?? 0), second: Number(m[6] ?? 0) };
  if (w.month < 1 || w.month > 12 || w.day < 1 || w.day > 31 || w.hour > 23 || w.minute > 59 || w.second > 59) return null;
  return new Date(instantOfWallTime(w, timezone));
}

export interface BackfillRequest {
  from?: string | undefined;
  to?: string | undefined;
  max?: number | undefined;
  concurrency?: number | undefined;
  rerun?: boolean | undefined;
  pauseOnFailure?: boolean | undefined;
}

/**
 * The operator's words as BackfillOptions for schedule `s`; ValidationError naming every bad
 * field at once. The range must lie in the past (by `now`): the engine publishes what comes.
 */
export function backfillOptions(s: Pick<Schedule, 'timezone'>, raw: BackfillRequest, now: Date): BackfillOptions {
  const issues: FieldIssue[] = [];
  const time = (field: 'from' | 'to', v: string | undefined): Date | null => {
    if (v === undefined || v === '') {
      issues.push({ field, message: `${field} is required: an ISO time (2026-12-01T00:00:00Z) or a date (2026-12-01, midnight in the schedule's time zone)` });
      return null;
    }
    const d = parseBackfillTime(v, s.timezone);
    if (!d) issues.push({ field, message: `${field} must be an ISO time (2026-12-01T00:00:00Z) or a date (2026-12-01), not "${v}"` });
    return d;
  };
  const from = time('from', raw.from);
  const to = time('to', raw.to);
  if (from && to && from >= to) issues.push({ field: 'to', message: `to (${to.toISOString()}) must be later than from (${from.toISOString()})` });
  if (to && to > now) issues.push({ field: 'to', message: `to (${to.toISOString()}) is in the future: a backfill runs past occurrences, the engine publishes the coming ones` });
  const int = (field: string, v: number | undefined, dflt: number, limit: number): number => {
    if (v === undefined) return dflt;
    if (!Number.isInteger(v) || v < 1 || v > limit) issues.push({ field, message: `${field} must be a whole number from 1 to ${limit}, not ${String(v)}` });
    return v;
  };
  const max = int('max', raw.max, BACKFILL_MAX_DEFAULT, BACKFILL_MAX_LIMIT);
  const concurrency = int('concurrency', raw.concurrency, BACKFILL_CONCURRENCY_DEFAULT, BACKFILL_CONCURRENCY_LIMIT);
  if (issues.length > 0) throw new ValidationError(issues);
  return { from: from!, to: to!, max, concurrency, rerun: raw.rerun ?? false, pauseOnFailure: raw.pauseOnFailure ?? false };
}

type TriggerDef = Pick<Schedule, 'trigger' | 'timezone'>;

/** The schedule's occurrences in [from, to); AppError backfill_too_large past `max`. */
export function occurrencesIn(def: TriggerDef, from: Date, to: Date, max: number): Date[] {
  const out: Date[] = [];
  let after = new Date(from.getTime() - 1);
  for (;;) {
    const batch = nextOccurrences(def, after, 500);
    for (const d of batch) {
      if (d >= to) return out;
      out.push(d);
      if (out.length > max) {
        throw new AppError('backfill_too_large', `${from.toISOString()} .. ${to.toISOString()} holds more than ${max} occurrences of the schedule: narrow the range or raise max (--max)`);
      }
    }
    if (batch.length < 500) return out;
    after = batch.at(-1)!;
  }
}

/** The occurrence before `at`, looked for in windows that double from a minute to about two years. */
export function previousOccurrence(def: TriggerDef, at: Date): Date | null {
  const t = at.getTime();
  for (let w = 60_000; w < 800 * 86_400_000; w *= 2) {
    let cur = nextOccurrences(def, new Date(t - w), 1)[0];
    if (!cur || cur.getTime() >= t) continue;
    for (;;) {
      const n = nextOccurrences(def, cur, 1)[0];
      if (!n || n.getTime() >= t) return cur;
      cur = n;
    }
  }
  return null;
}

/** Refuses a schedule whose job cannot run for a past period (it would collect today's data). */
export function checkBackfillable(s: Pick<Schedule, 'name' | 'job'>): void {
  if (!takesPeriod(s.job)) {
    throw new AppError(
      'backfill_unsupported',
      `schedule "${s.name}" runs ${s.job}, which takes no logical period: every backfilled occurrence would do what a run does today. Jobs that can be backfilled: ${PERIOD_JOBS.join(', ')}`,
    );
  }
}

/**
 * The plan: every occurrence in the range with its params and what is recorded for it.
 * An occurrence's period runs from the previous occurrence to it, what a run at that
 * instant would have collected.
 */
export async function planBackfill(db: Kysely<RunTables>, s: Schedule, o: BackfillOptions): Promise<BackfillOccurrence[]> {
  checkBackfillable(s);
  const instants = occurrencesIn(s, o.from, o.to, o.max);
  if (instants.length === 0) return [];
  const first = instants[0]!;
  const before = previousOccurrence(s, first) ?? new Date(first.getTime() - ((instants[1]?.getTime() ?? first.getTime() + 86_400_000) - first.getTime()));
  const recorded = await sql<{ at: Date; completed: boolean; failed: boolean; active: boolean }>`
    select scheduled_for as at, bool_or(state = 'completed') as completed, bool_or(state = 'failed') as failed,
           bool_or(state in ('waiting', 'held', 'queued', 'running', 'retrying')) as active
    from wombat.runs
    where schedule_id = ${s.id} and scheduled_for = any(${instants.map((d) => d.toISOString())}::timestamptz[])
      and state in ('completed', 'failed', 'waiting', 'held', 'queued', 'running', 'retrying')
    group by scheduled_for`.execute(db);
  const byInstant = new Map(recorded.rows.map((r) => [new Date(r.at).getTime(), r]));
  const plan: BackfillOccurrence[] = instants.map((at, i) => {
    const r = byInstant.get(at.getTime());
    const existing = r?.completed ? 'completed' : r?.active ? 'in_progress' : r?.failed ? 'failed' : 'none';
    const period = { from: (i === 0 ? before : instants[i - 1]!).toISOString(), to: at.toISOString() };
    const skip = existing === 'in_progress' || (existing === 'completed' && !o.rerun);
    return { schedule_id: s.id, schedule: s.name, job: s.job, scheduled_for: at.toISOString(), params: { ...s.params, period }, existing, action: skip ? 'skip' : 'run' };
  });
  // Refused here, not by the worker for every child: a schedule whose own params pin the range (from/to).
  const check = plan[0] ? checkJobParams(s.job, plan[0].params) : { ok: true as const };
  if (!check.ok) throw new AppError('backfill_unsupported', `schedule "${s.name}" cannot run for a logical period: ${check.problems.join('; ')}`);
  return plan;
}
