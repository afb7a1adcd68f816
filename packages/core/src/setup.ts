import { ensureQueues, type JobTimeouts } from './jobs/queues.ts';
import { startBoss } from './platform/boss.ts';
import { createSql } from './platform/db.ts';
import type { Logger } from './platform/logger.ts';
import { migrateWombat, workspaceMigrations } from './platform/migrate.ts';
import { ensureJobIndexes } from './runs/job-indexes.ts';

/**
 * Brings a database up to this version of Wombat: the migrations of every package
 * (the folders each one lists in its package.json: core's domains, the collectors),
 * then pg-boss's schema and Wombat's queues. Production runs this once per deploy
 * (deploy/migrate.ts) before starting services; services never migrate. Import as
 * `@wombat/core/setup`. `upToVersion`: Wombat's migrations up to that one only (a restore).
 */
export async function migrateAll(opts: { url: string; log: Logger; outageGraceSeconds?: number; jobTimeouts?: JobTimeouts; jobKeepHours?: number; upToVersion?: number }): Promise<{ applied: string[] }> {
  const sql = createSql({ url: opts.url, poolSize: 1, applicationName: 'wombat-migrate', statementTimeoutMs: 0, transactionTimeoutMs: 0, connectTimeoutMs: 10_000 });
  let applied: string[];
  try {
    ({ applied } = await migrateWombat(sql, opts.log, await workspaceMigrations(), opts.upToVersion !== undefined ? { upTo: opts.upToVersion } : {}));
  } finally {
    await sql.end({ timeout: 5 });
  }
  const boss = await startBoss({ url: opts.url, role: 'migrator', log: opts.log, poolSize: 2, connectTimeoutMs: 10_000 });
  try {
    await ensureQueues(boss, {
      ...(opts.outageGraceSeconds !== undefined ? { outageGraceSeconds: opts.outageGraceSeconds } : {}),
      ...(opts.jobTimeouts ? { jobTimeouts: opts.jobTimeouts } : {}),
      ...(opts.jobKeepHours !== undefined ? { jobKeepHours: opts.jobKeepHours } : {}),
    });
  } finally {
    await boss.stop({ graceful: false, close: true });
  }
  const indexSql = createSql({ url: opts.url, poolSize: 1, applicationName: 'wombat-migrate', statementTimeoutMs: 0, transactionTimeoutMs: 0, connectTimeoutMs: 10_000 });
  try {
    const built = await ensureJobIndexes(indexSql);
    if (built.length > 0) opts.log.info({ indexes: built }, 'indexes on the job queue built');
  } finally {
    await indexSql.end({ timeout: 5 });
  }
  return { applied };
}
