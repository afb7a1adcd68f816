import { JOB_TYPES } from '@wombat/core/jobs';
import type { CoreTables } from '@wombat/core/tables';
export { FINISHED_RUN_STATES as FINISHED_STATES, RUN_STATES, type RunState as CliRunState } from '@wombat/core/runs';
import { ACTIVE_RUN_STATES, countRuns, readRunCounts } from '@wombat/core/runs';
import { sql, type Kysely } from 'kysely';

/**
 * Read-only queries of the CLI. Writes go through core (and the api's run store),
 * never through SQL of the CLI's own.
 */

type Db = Kysely<CoreTables>;

export interface QueueStats {
  job: string;
  /** waiting (for prerequisites) + held + queued + retrying: published (or held back) and not yet running. */
  waiting: number;
  running: number;
  completed: number;
  failed: number;
  /** failed / (completed + failed) over the window; null when nothing finished. */
  failure_rate: number | null;
}

/**
 * Per job type: unfinished runs now, outcomes over the last `windowMinutes` (from the minute
 * holding its start), from the run roll-ups: the same cost with a million runs queued.
 */
export async function queueStats(db: Db, windowMinutes: number): Promise<QueueStats[]> {
  const [current, finished] = await Promise.all([readRunCounts(db, { kind: 'current' }), readRunCounts(db, { kind: 'finished', windowSeconds: windowMinutes * 60 })]);
  const byJob = new Map<string, QueueStats>();
  const get = (job: string) => {
    let s = byJob.get(job);
    if (!s) byJob.set(job, (s = { job, waiting: 0, running: 0, completed: 0, failed: 0, failure_rate: null }));
    return s;
  };
  for (const job of JOB_TYPES) get(job);
  for (const r of current) {
    if (r.state === 'running') get(r.job).running += r.n;
    else if ((ACTIVE_RUN_STATES as readonly string[]).includes(r.state)) get(r.job).waiting += r.n;
  }
  for (const r of finished) {
    if (r.state === 'completed') get(r.job).completed += r.n;
    else if (r.state === 'failed') get(r.job).failed += r.n;
  }
  for (const s of byJob.values()) s.failure_rate = s.completed + s.failed === 0 ? null : s.failed / (s.completed + s.failed);
  return [...byJob.values()].sort((a, b) => a.job.localeCompare(b.job));
}

/** Runs failed for good and not requeued, from the run roll-ups. */
export async function deadLetterCount(db: Db): Promise<number> {
  return countRuns(db, { deadLetters: true });
}

export interface OpenAlert {
  id: string;
  kind: string;
  severity: string;
  subject: string;
  opened_at: Date;
}

/** Open alerts (wombat.alerts, kept by the engines' alert evaluator), most severe and newest first. */
export async function openAlerts(db: Db, limit = 50): Promise<OpenAlert[]> {
  const r = await sql<OpenAlert>`
    select id::text as id, kind, severity, subject, opened_at from wombat.alerts
     where state = 'open'
     order by case severity when 'critical' then 0 when 'warning' then 1 else 2 end, opened_at desc
     limit ${limit}`.execute(db);
  return r.rows;
}
