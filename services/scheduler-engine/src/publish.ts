import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { fromKysely, jobInsertFor, type CoreTables, type JobType, type PgBoss, type Schedule } from '@wombat/core';
import { countActiveRuns, recordOccurrences, type OccurrenceRow } from './statements.ts';

/** What the engine decided for one occurrence, before the overlap policy. */
export interface Decision {
  schedule: Schedule;
  at: Date;
  action: 'publish' | 'missed';
  reason?: string;
  /** The schedule's next occurrence after this one, for next_run_at. */
  nextAt: Date | undefined;
}

export interface PublishedOccurrence {
  runId: string;
  scheduleId: number;
  scheduledFor: Date;
  state: OccurrenceRow['state'];
  /** The schedule's next occurrence after this one, for next_run_at. */
  nextAt: Date | undefined;
}

/**
 * One transaction for a batch of due occurrences: the overlap check (only when a
 * schedule in the batch needs it), the run rows under the exactly-once index,
 * then the pg-boss jobs of the rows this engine won, per queue. Every occurrence
 * of a schedule due in a pass must be in the same batch (overlap counts within
 * it). The schedules' last/next bookkeeping is left to the caller
 * (`recordLastRuns`), so that it does not delay the commit.
 */
export async function publishBatch(db: Kysely<CoreTables>, boss: PgBoss, decisions: Decision[]): Promise<PublishedOccurrence[]> {
  if (decisions.length === 0) return [];
  return db.transaction().execute(async (trx) => {
    const needOverlap = [...new Set(decisions.filter((d) => d.action === 'publish' && d.schedule.overlap !== 'allow').map((d) => d.schedule.id))];
    const active = await countActiveRuns(trx, needOverlap);
    const rows: OccurrenceRow[] = [];
    const byId = new Map<string, Decision>();
    for (const d of decisions) {
      const row: OccurrenceRow = {
        id: randomUUID(),
        schedule_id: d.schedule.id,
        job: d.schedule.job,
        scheduled_for: d.at.toISOString(),
        state: d.action === 'missed' ? 'missed' : 'queued',
        reason: d.reason ?? null,
        params: d.schedule.params,
      };
      if (row.state === 'queued') applyOverlap(row, d.schedule, active);
      rows.push(row);
      byId.set(row.id, d);
    }
    const inserted = await recordOccurrences(trx, rows);
    const won = new Set(inserted.map((r) => r.id));
    const jobs = new Map<JobType, { id: string; schedule: Schedule }[]>();
    for (const r of rows) {
      if (r.state !== 'queued' || !won.has(r.id)) continue;
      const s = byId.get(r.id)!.schedule;
      const list = jobs.get(s.job) ?? [];
      list.push({ id: r.id, schedule: s });
      jobs.set(s.job, list);
    }
    const conn = { db: fromKysely(trx) };
    for (const [job, list] of jobs) await boss.insert(job, list.map(({ id, schedule }) => jobInsert(id, schedule)), conn);
    return rows
      .filter((r) => won.has(r.id))
      .map((r) => ({ runId: r.id, scheduleId: r.schedule_id, scheduledFor: byId.get(r.id)!.at, state: r.state, nextAt: byId.get(r.id)!.nextAt }));
  });
}

/**
 * Overlap, counting runs already in the database and those earlier in this batch:
 * skip publishes only when nothing of the schedule is queued or running;
 * queue-one lets at most one run wait, and holds it (no job yet) while another
 * runs, so two runs of the schedule never execute at once.
 */
function applyOverlap(row: OccurrenceRow, s: Schedule, active: Map<number, { queued: number; running: number }>): void {
  if (s.overlap === 'allow') return;
  const a = active.get(s.id) ?? { queued: 0, running: 0 };
  active.set(s.id, a);
  if (s.overlap === 'skip') {
    if (a.queued + a.running > 0) {
      row.state = 'skipped';
      row.reason = 'overlap skip: an earlier run is still queued or running';
    } else a.queued++;
    return;
  }
  if (a.queued > 0) {
    row.state = 'skipped';
    row.reason = 'overlap queue-one: a run is already waiting';
  } else {
    if (a.running > 0) row.state = 'held';
    a.queued++;
  }
}

export function jobInsert(id: string, s: Pick<Schedule, 'job' | 'params' | 'timeoutSeconds' | 'maxRetries' | 'retryDelaySeconds' | 'retryBackoff'>) {
  return jobInsertFor(
    {
      job: s.job,
      params: s.params,
      ...(s.timeoutSeconds != null ? { timeoutSeconds: s.timeoutSeconds } : {}),
      ...(s.maxRetries != null ? { retryLimit: s.maxRetries } : {}),
      ...(s.retryDelaySeconds != null ? { retryDelaySeconds: s.retryDelaySeconds } : {}),
      ...(s.retryBackoff != null ? { retryBackoff: s.retryBackoff } : {}),
    },
    id,
  );
}
