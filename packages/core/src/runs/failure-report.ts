import { sql, type Kysely } from 'kysely';
import type { RunTables } from './tables.ts';
import type { ErrorReporter } from '../platform/error-reporting.ts';

/** A run that failed for good, as its reporter knows it: the error as thrown, when it has one. */
export interface FailedRun {
  runId: string;
  attempt?: number;
  error?: unknown;
}

/**
 * Reports runs that failed for good (a worker's last attempt, a run lost with its worker) to the
 * error reporter, with the job, the attempt and the schedule they belong to as the run history
 * has them. Nothing is read while the reporter is off. A report is never worth failing for: the
 * caller logs what this throws and goes on.
 */
export async function reportFailedRuns(db: Kysely<RunTables>, reporter: ErrorReporter, failures: FailedRun[]): Promise<void> {
  if (!reporter.enabled || failures.length === 0) return;
  const given = new Map(failures.map((f) => [f.runId, f]));
  const { rows } = await sql<{ id: string; job: string; attempts: number; schedule_id: string | number | null; schedule_name: string | null; error: unknown }>`
    select r.id, r.job, r.attempts, r.schedule_id, s.name as schedule_name, r.error
      from wombat.runs r left join wombat.schedules s on s.id = r.schedule_id
     where r.id = any(${[...given.keys()]}::uuid[])`.execute(db);
  for (const row of rows) {
    const f = given.get(row.id)!;
    reporter.runFailed({
      job: row.job,
      runId: row.id,
      attempt: f.attempt ?? row.attempts,
      scheduleId: row.schedule_id === null ? null : Number(row.schedule_id),
      scheduleName: row.schedule_name,
      error: f.error ?? row.error,
    });
  }
}
