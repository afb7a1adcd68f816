import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import postgres from 'postgres';
import { createDatabase, type Database } from './platform/db.ts';
import { startEmbeddedPostgres } from './platform/embedded-postgres.ts';
import { createLogger, type Logger } from './platform/logger.ts';
import { freePort } from './platform/process.ts';
import { migrateAll } from './setup.ts';
import type { CoreTables } from './tables.ts';

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

/**
 * The environment a test gives a child process it starts with a clean environment of its own:
 * PATH, and Node's compile cache of the run (NODE_COMPILE_CACHE, set by deploy/with-postgres.ts)
 * so that the child does not strip and compile the same TypeScript sources again.
 */
export function childEnv(vars: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    ...(process.env.NODE_COMPILE_CACHE ? { NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE } : {}),
    ...vars,
  };
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
  return createOwnedDatabase(t, prefix, opts);
}

/** A test database, empty or a copy of `template` whose objects then belong to the database's owner. */
async function createOwnedDatabase(t: Teardown, prefix: string, opts: { asAdmin?: boolean; template?: string }): Promise<{ url: string; name: string }> {
  const admin = testAdminUrl();
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const asAdmin = opts.asAdmin === true || process.env.WOMBAT_TEST_AS_ADMIN === '1';
  const password = randomBytes(12).toString('hex');
  const sql = postgres(admin, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    if (!asAdmin) await sql.unsafe(`create role "${name}" login nosuperuser nocreatedb nocreaterole noreplication password '${password}'`);
    await sql.unsafe(`create database "${name}"${opts.template ? ` template "${opts.template}"` : ''}${asAdmin ? '' : ` owner "${name}"`}`);
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
  if (opts.template) {
    // The copy's schemas, tables and functions belong to the template's role: hand them to
    // this database's owner, as if it had run the migrations itself.
    const inside = postgres(withDatabase(admin, name).toString(), { max: 1, onnotice: () => {}, connect_timeout: 10 });
    try {
      await inside.unsafe(`reassign owned by "${opts.template}" to ${asAdmin ? 'current_user' : `"${name}"`}`);
    } finally {
      await inside.end();
    }
  }
  const url = withDatabase(admin, name);
  if (!asAdmin) {
    url.username = name;
    url.password = password;
  }
  return { url: url.toString(), name };
}

function withDatabase(serverUrl: string, name: string): URL {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url;
}

/**
 * Migrating a database (Wombat's migrations, then pg-boss's schema and queues) costs the
 * server seconds, and a suite makes about a hundred test databases. When WOMBAT_TEST_TEMPLATE
 * names a template (deploy/with-postgres.ts sets one per run and drops it at the end), the
 * first test database of the run migrates it once, under a least-privileged role of its own
 * as any test database would be, and every migrated test database is a copy of it (CREATE
 * DATABASE ... TEMPLATE copies files; no migration runs again). Unset: each one is migrated.
 */
export function testTemplateName(): string | undefined {
  const name = process.env.WOMBAT_TEST_TEMPLATE?.trim();
  if (!name) return undefined;
  if (!/^[a-z_][a-z0-9_]{0,54}$/.test(name)) throw new Error(`WOMBAT_TEST_TEMPLATE: "${name}" must be a lower-case PostgreSQL name of at most 55 characters`);
  return name;
}

/** The template `name` while it is being migrated: renamed once complete, so a template that exists is whole. */
const partialTemplate = (name: string) => `${name}_partial`;

/** The migrated template `name` on the test server, made by whichever test process asks first. */
async function ensureTemplate(name: string): Promise<void> {
  const admin = testAdminUrl();
  const sql = postgres(admin, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    // Test files start together: one makes the template, the others wait for it here.
    await sql`select pg_advisory_lock(hashtext(${name}))`;
    const [found] = await sql`select 1 from pg_database where datname = ${name}`;
    if (found) return;
    const building = partialTemplate(name);
    const password = randomBytes(12).toString('hex');
    await sql.unsafe(`drop database if exists "${building}" with (force)`);
    const [role] = await sql`select 1 from pg_roles where rolname = ${name}`;
    if (!role) await sql.unsafe(`create role "${name}" login nosuperuser nocreatedb nocreaterole noreplication`);
    await sql.unsafe(`alter role "${name}" login password '${password}'`);
    await sql.unsafe(`create database "${building}" owner "${name}"`);
    await sql.unsafe(`revoke all on database "${building}" from public`);
    const url = withDatabase(admin, building);
    url.username = name;
    url.password = password;
    await migrateAll({ url: url.toString(), log: testLogger('test-template') });
    // Owned by the server's role, so that handing a copy's objects to its owner leaves the
    // template alone; closed to connections, since one open connection would block every copy.
    await sql.unsafe(`alter database "${building}" owner to current_user`);
    await sql.unsafe(`alter database "${building}" rename to "${name}"`);
    await sql.unsafe(`alter database "${name}" with allow_connections false`);
    await sql.unsafe(`alter role "${name}" nologin password null`);
  } finally {
    await sql.end();
  }
}

/** Drops the template `name` and its role (deploy/with-postgres.ts, when the run ends). */
export async function dropTestTemplate(adminUrl: string, name: string): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    for (const db of [name, partialTemplate(name)]) await sql.unsafe(`drop database if exists "${db}" with (force)`);
    await sql.unsafe(`drop role if exists "${name}"`);
  } finally {
    await sql.end();
  }
}

/** A migrated database of this test file's own, with a query pool closed at teardown. */
export async function createTestDatabase<Tables = CoreTables>(t: Teardown, opts: { poolSize?: number } = {}): Promise<TestDatabase<Tables>> {
  const template = testTemplateName();
  if (template) await ensureTemplate(template);
  const { url, name } = await createOwnedDatabase(t, 'wombat_t', template ? { template } : {});
  const log = testLogger();
  if (!template) await migrateAll({ url, log });
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
  await skipDiskFlushes(server.adminUrl);
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

/**
 * A test server's data is thrown away: it need not survive a crash of the machine, only of
 * PostgreSQL (which writes through the OS either way). Without fsync and full-page writes,
 * the thousands of commits and CREATE DATABASEs of a suite stop waiting on the disk. Written
 * with ALTER SYSTEM, so the server keeps it across restarts.
 */
export async function skipDiskFlushes(adminUrl: string): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await sql`alter system set fsync = off`;
    await sql`alter system set full_page_writes = off`;
    await sql`select pg_reload_conf()`;
  } finally {
    await sql.end();
  }
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

/**
 * Every table of Wombat's schemas (wombat's and pg-boss's, partitions with their table): its row
 * count and the md5 of its rows in order. Two databases with equal digests hold the same rows.
 */
export async function tableDigests(sql: postgres.Sql | postgres.ReservedSql): Promise<Record<string, string>> {
  const tables = await sql<{ t: string }[]>`
    select format('%I.%I', n.nspname, c.relname) as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('wombat', 'pgboss') and c.relkind in ('r', 'p') and not c.relispartition order by 1`;
  const out: Record<string, string> = {};
  for (const { t: table } of tables) {
    const [r] = await sql.unsafe<{ n: string; md5: string | null }[]>(`select count(*)::text as n, md5(string_agg(x::text, E'\\n' order by x::text)) as md5 from ${table} x`);
    out[table] = `${r!.n} ${r!.md5 ?? '-'}`;
  }
  return out;
}

interface PlanNode {
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

/**
 * What a statement reads of one table, by EXPLAIN ANALYZE: the rows its scans of `table` returned
 * or filtered away (over every loop), and the indexes they used. A test of a periodic statement
 * asserts these stay bounded while the table holds many more rows.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function planReads(db: Kysely<any>, statement: RawBuilder<unknown>, table: string): Promise<{ rows: number; indexes: string[] }> {
  const { rows } = await sql<{ 'QUERY PLAN': { Plan: PlanNode }[] }>`explain (analyze, format json) ${statement}`.execute(db);
  let read = 0;
  const indexes: string[] = [];
  const walk = (n: PlanNode) => {
    if (n['Relation Name'] === table) {
      read += (n['Actual Rows'] + (n['Rows Removed by Filter'] ?? 0) + (n['Rows Removed by Index Recheck'] ?? 0)) * n['Actual Loops'];
      if (n['Index Name']) indexes.push(n['Index Name']);
    }
    for (const c of n.Plans ?? []) walk(c);
  };
  walk(rows[0]!['QUERY PLAN'][0]!.Plan);
  return { rows: read, indexes };
}
