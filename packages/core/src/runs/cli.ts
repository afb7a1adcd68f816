import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { JobType } from '../jobs/contracts.ts';
import type { RunTables } from './tables.ts';

/**
 * Run history of jobs run in the operator's own process (`wombat run`), without
 * the queue: trigger 'cli', no pg-boss job. Recorded as running at once, then
 * progress, then the outcome, so the history and the dashboard show them like
 * any other run. While it runs its process beats every CLI_RUN_BEAT_MS; the
 * reconciler ends one silent for CLI_RUN_SILENT_SECONDS (its process died).
 */
type Db = Kysely<RunTables>;

/** Records a run that starts now in this process; returns its id. `params` must be validated. */
export async function recordCliRunStart(db: Db, input: { job: JobType; params: object }): Promise<string> {
  const id = randomUUID();
  await db
    .insertInto('wombat.runs')
    .values({
      id,
      job: input.job,
      trigger: 'cli',
      scheduled_for: sql<Date>`now()`,
      params: input.params,
      state: 'running',
      attempts: 1,
      started_at: sql<Date>`now()`,
    })
    .execute();
  return id;
}

export async function recordCliRunProgress(db: Db, id: string, progress: number, message: string | null): Promise<void> {
  await db
    .updateTable('wombat.runs')
    .set({ progress: Math.min(1, Math.max(0, progress)), progress_message: message, updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where('state', '=', 'running')
    .execute();
}

/** How often a cli run's process beats (touches its row) while it runs. */
export const CLI_RUN_BEAT_MS = 10_000;
/** A running cli run silent this long lost its process: the reconciler ends it failed worker_lost. */
export const CLI_RUN_SILENT_SECONDS = 60;

/** The beat of a cli run: its process is alive. */
export async function beatCliRun(db: Db, id: string): Promise<void> {
  await db.updateTable('wombat.runs').set({ updated_at: sql<Date>`now()` }).where('id', '=', id).where('state', '=', 'running').execute();
}

/** The outcome of a cli run; `error` is a serialized error (no stack). */
export async function recordCliRunEnd(
  db: Db,
  id: string,
  outcome: { state: 'completed'; result: unknown } | { state: 'failed' | 'cancelled'; error: object },
): Promise<void> {
  await db
    .updateTable('wombat.runs')
    .set({
      state: outcome.state,
      ...(outcome.state === 'completed' ? { result: (outcome.result ?? {}) as object, progress: 1 } : { error: outcome.error }),
      finished_at: sql<Date>`now()`,
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', id)
    .execute();
}
