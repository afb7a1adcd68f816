import type { Kysely } from 'kysely';
import { deleteStaleWorkers } from '@wombat/core/workers';
import { deleteStaleEngines } from '@wombat/core/schedules';
import { deleteFinishedRuns } from '@wombat/core/runs';
import type { CoreTables } from '@wombat/core/tables';
import { tryXactLock } from './statements.ts';

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
  await deleteStaleWorkers(db, 7);
  return total;
}
