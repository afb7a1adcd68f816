import { PermanentError } from '@wombat/core/platform';
import type { BackupResult } from '@wombat/core/backup';
import type { HandlerDeps, JobContext } from './types.ts';

/**
 * The daily database backup. Its result (file, format, size, duration, tables, rows) is the
 * run's result; a failure fails the run, which the alerts report like any failed schedule run,
 * and a backup that stops happening is reported by the schedule's staleness alert.
 */
export async function databaseBackup(ctx: JobContext<'database-backup'>, deps: HandlerDeps): Promise<BackupResult> {
  if (!deps.backup) throw new PermanentError('backup_unavailable', 'this worker has no BACKUP_DIR: set it (the same on the engine and the workers) to take database backups');
  ctx.progress(0, 'backing up');
  return deps.backup.run(ctx.log, ctx.signal);
}
