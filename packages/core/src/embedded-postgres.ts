import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { ConfigError } from './config.ts';
import { AppError } from './errors.ts';
import type { Logger } from './logger.ts';
import { PG_PASSWORD as PASSWORD, PG_USER as USER, initdb, isProcessAlive, placement } from './embedded-postgres-files.ts';

export { isProcessAlive };

export interface EmbeddedPostgres {
  /** URL of the `wombat` database (or `database`) on the embedded server. */
  url: string;
  /** URL of the maintenance database `postgres`, for creating and dropping databases. */
  adminUrl: string;
  pid: number;
  /** The data directory in use (`dir`, or where root had to keep it instead). */
  dir: string;
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
  const place = await placement(opts.dir);
  const dir = place.dir;
  if (place.movedFrom) {
    log.warn({ requested: place.movedFrom, dir }, 'the PostgreSQL user cannot enter the checkout; the embedded data directory is kept here instead');
  }

  const running = await runningServer(dir);
  if (running) {
    const adminUrl = urlFor(running.port, 'postgres');
    await waitReady(adminUrl, running.pid, 30_000);
    await ensureDatabase(adminUrl, database);
    const owned = opts.adopt === true;
    log.info({ pid: running.pid, port: running.port, owned, dir }, 'using the embedded PostgreSQL already running');
    return {
      url: urlFor(running.port, database),
      adminUrl,
      pid: running.pid,
      dir,
      owned,
      stop: owned ? () => stopServer(running.pid, log) : async () => {},
    };
  }

  const { bin, ids } = place;
  if (!existsSync(path.join(dir, 'PG_VERSION'))) {
    log.info({ dir }, 'initialising embedded PostgreSQL');
    await initdb(bin.initdb, dir, ids);
  }

  const logPath = `${dir}.log`;
  const logFd = openSync(logPath, 'a');
  const child = spawn(
    bin.postgres,
    ['-D', dir, '-p', String(opts.port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=300'],
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
    if (await runningServer(dir)) return startEmbeddedPostgres(opts);
    throw new AppError(
      'embedded_postgres_failed',
      `the embedded PostgreSQL did not start on port ${opts.port}; is the port taken? (set EMBEDDED_PG_PORT, or DATABASE_URL) log: ${logPath}`,
      { cause: err },
    );
  }
  await ensureDatabase(adminUrl, database);
  log.info({ pid, port: opts.port, dir }, 'embedded PostgreSQL started');
  return { url: urlFor(opts.port, database), adminUrl, pid, dir, owned: true, stop: () => stopServer(pid, log) };
}

export interface ResolvedDatabase {
  url: string;
  embedded?: EmbeddedPostgres;
  stop(): Promise<void>;
}

/** The DATABASE_URL value that asks for the embedded PostgreSQL (local use: the launcher, tests, scripts). */
export const EMBEDDED_DATABASE = 'embedded';

/**
 * The PostgreSQL named by DATABASE_URL; `embedded` starts (or joins) the embedded
 * server under `embeddedDir`. Unset is a configuration error: a production service
 * must never fall back to a private, empty database because of a typo.
 */
export async function resolveDatabase(opts: {
  databaseUrl: string | undefined;
  embeddedDir: string;
  embeddedPort: number;
  log: Logger;
  adopt?: boolean;
}): Promise<ResolvedDatabase> {
  if (opts.databaseUrl === undefined) throw new ConfigError([DATABASE_URL_MISSING]);
  if (opts.databaseUrl !== EMBEDDED_DATABASE) return { url: opts.databaseUrl, stop: async () => {} };
  const embedded = await startEmbeddedPostgres({ dir: opts.embeddedDir, port: opts.embeddedPort, log: opts.log, adopt: opts.adopt ?? false });
  return { url: embedded.url, embedded, stop: () => embedded.stop() };
}

export const DATABASE_URL_MISSING =
  'DATABASE_URL is not set: set it to your PostgreSQL, e.g. postgres://wombat:secret@db-host:5432/wombat (or DATABASE_URL=embedded for a private PostgreSQL under EMBEDDED_PG_DIR, local use only)';
