import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { createDatabase, type Database } from './db.ts';
import { createLogger, type Logger } from './logger.ts';
import { migrateAll } from './setup.ts';
import { startEmbeddedPostgres } from './embedded-postgres.ts';
import { freePort } from './process.ts';
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

/**
 * Creates an empty database on the test server; returns its URL. Dropped at teardown.
 *
 * The URL logs in as a role of the database's own that owns it and nothing else: not a
 * superuser, no CREATEDB or CREATEROLE, as a managed PostgreSQL gives (WOMBAT_TEST_AS_ADMIN=1:
 * the server's own role, as before). So every test that touches the database checks that
 * Wombat works with the least a DBA grants. `asAdmin`: the server's role, for a test whose
 * deadlines leave no room for the role's slower login (SCRAM as a fresh role took about
 * 40 ms more per connection on the embedded server).
 */
export async function createEmptyTestDatabase(t: Teardown, prefix = 'wombat_t', opts: { asAdmin?: boolean } = {}): Promise<{ url: string; name: string }> {
  const admin = testAdminUrl();
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const asAdmin = opts.asAdmin === true || process.env.WOMBAT_TEST_AS_ADMIN === '1';
  const password = randomBytes(12).toString('hex');
  const sql = postgres(admin, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    if (!asAdmin) await sql.unsafe(`create role "${name}" login nosuperuser nocreatedb nocreaterole noreplication password '${password}'`);
    await sql.unsafe(`create database "${name}"${asAdmin ? '' : ` owner "${name}"`}`);
    // What a managed service leaves to an owner: no schema of another role's to write in.
    if (!asAdmin) await sql.unsafe(`revoke all on database "${name}" from public`);
  } finally {
    await sql.end();
  }
  t.teardown(async () => {
    const drop = postgres(admin, { max: 1, onnotice: () => {}, connect_timeout: 10 });
    try {
      await drop.unsafe(`drop database if exists "${name}" with (force)`);
      if (!asAdmin) await drop.unsafe(`drop role if exists "${name}"`);
    } finally {
      await drop.end();
    }
  });
  const url = new URL(admin);
  url.pathname = `/${name}`;
  if (!asAdmin) {
    url.username = name;
    url.password = password;
  }
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

/**
 * A PostgreSQL server of the test's own (embedded, in a temporary directory, on a
 * free port), which the test may stop and start again to play an outage. The
 * `wombat` database on it is migrated. Stopped and removed at teardown.
 */
export interface PrivatePostgres {
  url: string;
  port: number;
  /** Fast shutdown (SIGINT): open transactions roll back, clients see 57P01, then ECONNREFUSED. */
  stop(): Promise<void>;
  /** Starts the same data directory again on the same port. */
  start(): Promise<void>;
  /** SIGSTOP to the server and its backends: connections stay open and nothing answers (a hung host). */
  pause(): void;
  resume(): void;
  readonly running: boolean;
}

export async function startPrivatePostgres(t: Teardown, opts: { migrate?: boolean } = {}): Promise<PrivatePostgres> {
  const root = mkdtempSync(path.join(tmpdir(), 'wombat-private-pg-'));
  // PostgreSQL runs as its own user when tests run as root: it must reach the directory.
  chmodSync(root, 0o755);
  const dir = path.join(root, 'pg');
  const port = await freePort();
  const log = testLogger('private-postgres');
  let server = await startEmbeddedPostgres({ dir, port, log });
  let running = true;
  t.teardown(async () => {
    if (running) {
      signalServer(server.pid, 'SIGCONT');
      await server.stop();
    }
    rmSync(root, { recursive: true, force: true });
  });
  if (opts.migrate !== false) await migrateAll({ url: server.url, log });
  return {
    url: server.url,
    port,
    get running() {
      return running;
    },
    async stop() {
      await server.stop();
      running = false;
    },
    async start() {
      server = await startEmbeddedPostgres({ dir, port, log });
      running = true;
    },
    pause: () => signalServer(server.pid, 'SIGSTOP'),
    resume: () => signalServer(server.pid, 'SIGCONT'),
  };
}

/** Signals the postmaster and its children: each backend calls setsid(), so a process-group signal misses them. */
function signalServer(pid: number, signal: NodeJS.Signals): void {
  const children = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        // /proc/N/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after the ')'.
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
  for (const p of [pid, ...children]) {
    try {
      process.kill(p, signal);
    } catch {
      // exited meanwhile
    }
  }
}
export { parseEnvelope, startSentryReceiver, type SentryEnvelope, type SentryReceiver } from './sentry-receiver.ts';
