import { ensureQueues, startBoss } from './boss.ts';
import { createSql } from './db.ts';
import type { Logger } from './logger.ts';
import { migrateWombat } from './migrate.ts';

/**
 * Brings a database up to this version of Wombat: Wombat's migrations, then
 * pg-boss's schema and Wombat's queues. Production runs this once per deploy
 * (deploy/migrate.ts) before starting services; services never migrate.
 */
export async function migrateAll(opts: { url: string; log: Logger; outageGraceSeconds?: number }): Promise<{ applied: string[] }> {
  const sql = createSql({ url: opts.url, poolSize: 1, applicationName: 'wombat-migrate', statementTimeoutMs: 0, transactionTimeoutMs: 0, connectTimeoutMs: 10_000 });
  let applied: string[];
  try {
    ({ applied } = await migrateWombat(sql, opts.log));
  } finally {
    await sql.end({ timeout: 5 });
  }
  const boss = await startBoss({ url: opts.url, role: 'migrator', log: opts.log, poolSize: 2, connectTimeoutMs: 10_000 });
  try {
    await ensureQueues(boss, opts.outageGraceSeconds !== undefined ? { outageGraceSeconds: opts.outageGraceSeconds } : {});
  } finally {
    await boss.stop({ graceful: false, close: true });
  }
  return { applied };
}
