import { createDatabase, type Database, startBoss } from '@wombat/core/platform';
import type { CoreTables } from '@wombat/core/tables';
import { migrateAll } from '@wombat/core/setup';
import { createEmptyTestDatabase, testLogger } from '@wombat/core/testing';
import { buildApp } from '../src/app.ts';

/** The benchmarks' admin token; reads are open. */
export const BENCH_TOKEN = 'bench-admin-token-0123456789abcdef';

/**
 * A migrated database of the benchmark's own with the api listening on it (a producer
 * pg-boss, a pool of 10); each part is closed by the teardowns, run in reverse.
 */
export async function startBenchApi(teardowns: (() => unknown)[]): Promise<{ url: string; name: string; base: string; database: Database<CoreTables>; stop(): Promise<void> }> {
  const { url, name } = await createEmptyTestDatabase({ teardown: (fn: () => unknown) => void teardowns.push(fn) }, 'wombat_bench');
  const log = testLogger('bench');
  await migrateAll({ url, log });
  const database = createDatabase<CoreTables>({ url, poolSize: 10, applicationName: 'wombat-bench' });
  teardowns.push(() => database.close());
  const boss = await startBoss({ url, role: 'producer', log, poolSize: 2 });
  teardowns.push(() => boss.stop({ graceful: false, close: true }));
  const app = await buildApp({ db: database.db, sql: database.sql, boss, log, auth: { adminToken: BENCH_TOKEN, reads: 'open' }, taskResultTtlDays: 7 });
  teardowns.push(() => app.close());
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, name, base, database, stop: async () => void (await Promise.all([app.close(), boss.stop({ graceful: false, close: true })])) };
}
