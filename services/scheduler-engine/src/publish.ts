import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { fromKysely, type PgBoss } from '@wombat/core/platform';
import type { JobType } from '@wombat/core/jobs';
import type { Schedule } from '@wombat/core/schedules';
import { jobInsertForSchedule, recordOccurrences, waitingReason, type OccurrenceRow } from '@wombat/core/runs';
import type { CoreTables } from '@wombat/core/tables';
import { countActiveRuns, lockScheduleVersions, type ActiveCounts } from './statements.ts';

/** What the engine decided for one occurrence, before the overlap policy. */
export interface Decision {
  schedule: Schedule;
  at: Date;
  action: 'publish' | 'missed';
  reason?: string;
  /** The schedule's next occurrence after this one, for next_run_at. */
  nextAt: Date | undefined;
}

/** A batch prepared ahead: committed at `atMs`, once `wait` (given how many rows it recorded) resolves. */
export interface PublishCommit {
  atMs: number;
  wait(recorded: number): Promise<void>;
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
 * One transaction for a batch of due occurrences: the schedules' versions are
 * locked and re-checked, the overlap check runs (only when a schedule in the
 * batch needs it), the run rows go in under the exactly-once index, then the
 * pg-boss jobs of the rows this engine won, per queue. Every occurrence of a
 * schedule due in a pass must be in the same batch (overlap counts within it).
 * The schedules' last/next bookkeeping is left to the caller (`recordLastRuns`),
 * so that it does not delay the commit.
 *
 * With `commit`, the transaction is prepared ahead of the occurrences' instant:
 * `wait` is awaited before COMMIT, which publishes the jobs at that instant;
 * published_at is `commit.atMs` (or the statement time when that has passed).
 * The schedule locks taken here are held until then, so an edit in between
 * waits for the commit.
 *
 * A decision planned from a definition that is no longer the active one (edited,
 * paused or deleted since this engine read it; another engine may be ahead of
 * this one) publishes nothing: an occurrence due before the change is recorded
 * as missed, a later one is dropped, as it is not an occurrence of the current
 * definition. `stale` lists the schedules whose decisions were set aside.
 */
export async function publishBatch(
  db: Kysely<CoreTables>,
  boss: PgBoss,
  decisions: Decision[],
  commit?: PublishCommit,
): Promise<PublishedOccurrence[] & { stale?: number[] }> {
  if (decisions.length === 0) return [];
  return db.transaction().execute(async (trx) => {
    const publishing = [...new Set(decisions.filter((d) => d.action === 'publish').map((d) => d.schedule.id))];
    const current = await lockScheduleVersions(trx, publishing);
    const stale = new Set(
      publishing.filter((id) => {
        const c = current.get(id);
        const planned = decisions.find((d) => d.schedule.id === id)!.schedule;
        return !c || c.version !== planned.version || c.status !== 'active';
      }),
    );
    const needOverlap = publishing.filter((id) => !stale.has(id) && decisions.find((d) => d.schedule.id === id)!.schedule.overlap !== 'allow');
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
        ...(commit ? { commit_at: new Date(commit.atMs).toISOString() } : {}),
      };
      if (row.state === 'queued' && stale.has(d.schedule.id)) {
        const changedAt = current.get(d.schedule.id)?.updatedAt;
        // Deleted (no row), or changed after this occurrence was due: it was missed.
        if (changedAt !== undefined && d.at.getTime() > changedAt.getTime()) continue;
        row.state = 'missed';
        row.reason = 'missed: the schedule was edited, paused or deleted before the occurrence was published';
      }
      if (row.state === 'queued') applyOverlap(row, d.schedule, active);
      // Prerequisites first: releaseWaitingRuns publishes it (or holds it for queue-one) once they have completed.
      if ((row.state === 'queued' || row.state === 'held') && d.schedule.after.length > 0) {
        row.state = 'waiting';
        row.reason = waitingReason(d.schedule);
      }
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
    for (const [job, list] of jobs) await boss.insert(job, list.map(({ id, schedule }) => jobInsertForSchedule(id, schedule)), conn);
    const out: PublishedOccurrence[] & { stale?: number[] } = rows
      .filter((r) => won.has(r.id))
      .map((r) => ({ runId: r.id, scheduleId: r.schedule_id, scheduledFor: byId.get(r.id)!.at, state: r.state, nextAt: byId.get(r.id)!.nextAt }));
    if (stale.size > 0) out.stale = [...stale];
    // Everything is written; the jobs become visible to workers at the commit.
    await commit?.wait(out.length);
    return out;
  });
}

/**
 * Overlap, counting runs already in the database and those earlier in this batch:
 * skip publishes only when nothing of the schedule is unfinished (held, queued,
 * running or retrying); queue-one lets at most one run wait, and holds it (no job
 * yet) while another is running or retrying, so two runs of the schedule never
 * execute at once.
 */
function applyOverlap(row: OccurrenceRow, s: Schedule, active: Map<number, ActiveCounts>): void {
  if (s.overlap === 'allow') return;
  const a = active.get(s.id) ?? { waiting: 0, busy: 0 };
  active.set(s.id, a);
  if (s.overlap === 'skip') {
    if (a.waiting + a.busy > 0) {
      row.state = 'skipped';
      row.reason = 'overlap skip: an earlier run is still unfinished (held, queued, running or retrying)';
    } else a.waiting++;
    return;
  }
  if (a.waiting > 0) {
    row.state = 'skipped';
    row.reason = 'overlap queue-one: a run is already waiting';
  } else {
    if (a.busy > 0) {
      row.state = 'held';
      // Shown with the run (api, dashboard): why it has no job yet. Cleared when it is released.
      row.reason = 'overlap queue-one: waits for the running (or retrying) run of its schedule to end';
    }
    a.waiting++;
  }
}
