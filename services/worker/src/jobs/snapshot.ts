import { PermanentError } from '@wombat/core/platform';
import { takeSnapshot } from '@wombat/collectors';
import type { HandlerDeps, JobContext } from './types.ts';

/** A dated snapshot of DATA_ROOT in SNAPSHOT_DIR, then the retention (BACKUP_KEEP_DAILY / _WEEKLY). */
export async function dataSnapshot(ctx: JobContext<'data-snapshot'>, deps: HandlerDeps): Promise<unknown> {
  const s = deps.snapshots;
  if (!s) throw new PermanentError('not_configured', 'SNAPSHOT_DIR is not set on this worker: set it (best on the file system of DATA_ROOT) to take data snapshots');
  const result = await takeSnapshot({ dataRoot: s.dataRoot, snapshotDir: s.snapshotDir, retention: s.retention, copy: ctx.params.copy === true });
  if (result.copiedBecause) ctx.log.warn({ snapshot: result.name, copied: result.copied }, `data snapshot: ${result.copiedBecause}`);
  ctx.log.info({ snapshot: result.name, files: result.files, bytes: result.bytes, linked: result.linked, removed: result.removed }, 'data snapshot taken');
  return result;
}
