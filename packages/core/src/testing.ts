import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { createDatabase, type Database } from './db.ts';
import { createLogger, type Logger } from './logger.ts';
import { migrateAll } from './setup.ts';
import type { CoreTables } from './db-types.ts';

/**
 * Test support: every test file gets a database of its own, migrated (Wombat and
 * pg-boss schemas), and dropped when the file's tests end.
 *
 * `npm test` provides a server in WOMBAT_TEST_ADMIN_URL (DATABASE_URL's server, or
 * an embedded PostgreSQL); a test file run on its own falls back to DATABASE_URL.
 */
export interface TestDatabase<Tables = CoreTables> extends Database<Tables> {
  url: string;
  name: string;
  log: Logger;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

export function testAdminUrl(): string {
  const url = process.env.WOMBAT_TEST_ADMIN_URL ?? process.env.DATABASE_URL;
  if (!url) {
    throw new Error('tests need PostgreSQL: run them with `npm test` (it starts one), or set DATABASE_URL to a server where you may create databases');
  }
  return url;
}

export function testLogger(name = 'test'): Logger {
  return createLogger({ name, level: process.env.TEST_LOG_LEVEL ?? 'silent', format: 'json' });
}

/** Creates an empty database on the test server; returns its URL. Dropped at teardown. */
export async function createEmptyTestDatabase(t: Teardown, prefix = 'wombat_t'): Promise<{ url: string; name: string }> {
  const admin = testAdminUrl();
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const sql = postgres(admin, { max: 1, onnotice: () => {} });
  await sql.unsafe(`create database "${name}"`);
  await sql.end();
  t.teardown(async () => {
    const drop = postgres(admin, { max: 1, onnotice: () => {} });
    try {
      await drop.unsafe(`drop database if exists "${name}" with (force)`);
    } finally {
      await drop.end();
    }
  });
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return { url: url.toString(), name };
}

/** A migrated database of this test file's own, with a query pool closed at teardown. */
export async function createTestDatabase<Tables = CoreTables>(t: Teardown, opts: { poolSize?: number } = {}): Promise<TestDatabase<Tables>> {
  const { url, name } = await createEmptyTestDatabase(t);
  const log = testLogger();
  await migrateAll({ url, log });
  const database = createDatabase<Tables>({ url, poolSize: opts.poolSize ?? 5, applicationName: 'wombat-test' });
  // Registered after the drop, so it runs before it (tap runs teardowns in reverse).
  t.teardown(() => database.close());
  return { ...database, url, name, log };
}
