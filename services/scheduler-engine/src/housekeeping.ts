import type { Kysely } from 'kysely';
import { fromKysely, getSchedule, jobDefaults, type CoreTables, type JobType, type PgBoss } from '@wombat/core';
import { jobInsert } from './publish.ts';
import { claimReleasableRuns, deleteFinishedRuns, deleteStaleEngines, markRunsPublished, tryXactLock } from './statements.ts';

/**
 * Sends the jobs of runs held by overlap queue-one once their schedule has
 * nothing running. Row locks (skip locked) let several engines do this at once
 * without sending a held run twice. Returns how many were released.
 */
export async function releaseHeldRuns(db: Kysely<CoreTables>, boss: PgBoss, limit = 100): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const held = await claimReleasableRuns(trx, limit);
    if (held.length === 0) return 0;
    const conn = { db: fromKysely(trx) };
    for (const r of held) {
      const s = await getSchedule(trx, r.schedule_id);
      const job = r.job as JobType;
      const d = jobDefaults[job];
      const opts = s ?? { job, params: r.params, timeoutSeconds: d.timeoutSeconds, maxRetries: d.retryLimit, retryDelaySeconds: d.retryDelaySeconds, retryBackoff: d.retryBackoff };
      await boss.insert(job, [{ ...jobInsert(r.id, opts), data: r.params }], conn);
    }
    await markRunsPublished(trx, held.map((r) => r.id));
    return held.length;
  });
}

export interface RetentionOptions {
  taskResultTtlDays: number;
  runRetentionDays: number;
  batchSize?: number;
  /** Upper bound on batches per call, so one pass never runs for long. */
  maxBatches?: number;
}

/**
 * Deletes finished runs past retention in bounded batches, each its own short
 * transaction. An advisory lock per batch lets only one engine purge at a time;
 * returns the rows deleted, or null when another engine holds the lock.
 */
export async function purgeFinishedRuns(db: Kysely<CoreTables>, opts: RetentionOptions): Promise<number | null> {
  const batchSize = opts.batchSize ?? 1000;
  let total = 0;
  for (let i = 0; i < (opts.maxBatches ?? 100); i++) {
    const n = await db.transaction().execute(async (trx) => {
      if (!(await tryXactLock(trx, 'wombat.retention'))) return null;
      return deleteFinishedRuns(trx, { taskTtlDays: opts.taskResultTtlDays, retentionDays: opts.runRetentionDays, batchSize });
    });
    if (n === null) return i === 0 ? null : total;
    total += n;
    if (n < batchSize) break;
  }
  await deleteStaleEngines(db, 7);
  return total;
}
