import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { ConfigError } from './config.ts';
import { AppError } from './errors.ts';
import type { Logger } from './logger.ts';
import { PG_PASSWORD as PASSWORD, PG_USER as USER, initdb, isProcessAlive, placement } from './embedded-postgres-files.ts';
import { clearOwner, isOwner, otherClients, ownerAlive, readOwner, withOwnerLock, writeOwner } from './embedded-postgres-owner.ts';

export { isProcessAlive };

export interface EmbeddedPostgres {
  /** URL of the `wombat` database (or `database`) on the embedded server. */
  url: string;
  /** URL of the maintenance database `postgres`, for creating and dropping databases. */
  adminUrl: string;
  pid: number;
  /** The data directory in use (`dir`, or where root had to keep it instead). */
  dir: string;
  /**
   * True when this process started the server, or claimed it as an orphan (its owner
   * gone): only then may it stop it. Otherwise the server is borrowed.
   */
  owned: boolean;
  /** The pid of the process that owns the server; undefined for an orphan. */
  ownerPid(): number | undefined;
  /** True while the server process runs. */
  running(): boolean;
  /**
   * What a process calls when it is done with the server. The owner stops it, unless
   * other clients are still connected (a `npm start` that borrowed it): then it leaves
   * it running as an orphan, for the last of them to stop. A borrower stops it only
   * when its owner is gone and nobody else is connected; otherwise it does nothing.
   */
  release(): Promise<void>;
  /** The owner stops the server now, whoever is connected (tests of an outage); a borrower does nothing. */
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dir: string;
  port: number;
  log: Logger;
  database?: string;
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
 * stops last, after they have drained. Only the process that started it (or claimed
 * it as an orphan) stops it; see embedded-postgres-owner.ts.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedPostgres> {
  const log = opts.log.child({ component: 'embedded-postgres' });
  const place = await placement(opts.dir);
  if (place.movedFrom) {
    log.warn({ requested: place.movedFrom, dir: place.dir }, 'the PostgreSQL user cannot enter the checkout; the embedded data directory is kept here instead');
  }
  const token = randomUUID();
  const { pid, port } = await withOwnerLock(place.dir, () => findOrStart(opts, place, token, log));
  return handle(place.dir, pid, port, opts.database ?? 'wombat', token, log);
}

/**
 * The embedded server already running from `dir` (an `npm start` in this checkout),
 * borrowed read-only: this process never claims it, even as an orphan, and never
 * stops it. Undefined when none runs there; nothing is started or created.
 */
export async function findEmbeddedPostgres(opts: { dir: string; log: Logger; database?: string }): Promise<EmbeddedPostgres | undefined> {
  const log = opts.log.child({ component: 'embedded-postgres' });
  let dir = opts.dir;
  if (process.getuid?.() === 0) {
    // As root the data directory may live elsewhere (see placement); an unusable platform has none.
    const place = await placement(opts.dir).catch(() => undefined);
    if (!place) return undefined;
    dir = place.dir;
  }
  const running = await runningServer(dir);
  if (!running) return undefined;
  await waitReady(urlFor(running.port, 'postgres'), running.pid, 10_000);
  log.info({ pid: running.pid, port: running.port, dir }, 'using the embedded PostgreSQL running in this checkout (borrowed)');
  const borrowed = handle(dir, running.pid, running.port, opts.database ?? 'wombat', randomUUID(), log);
  return { ...borrowed, owned: false, stop: async () => {}, release: async () => {} };
}

const urlFor = (port: number, db: string) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${db}`;

/** Under the owner lock: join the running server (claiming it when orphaned), or start one and own it. */
async function findOrStart(opts: EmbeddedOptions, place: Awaited<ReturnType<typeof placement>>, token: string, log: Logger): Promise<{ pid: number; port: number }> {
  const { dir } = place;
  const database = opts.database ?? 'wombat';
  const running = await runningServer(dir);
  if (running) {
    const adminUrl = urlFor(running.port, 'postgres');
    await waitReady(adminUrl, running.pid, 30_000);
    await ensureDatabase(adminUrl, database);
    const owner = readOwner(dir);
    if (ownerAlive(owner)) {
      log.info({ pid: running.pid, port: running.port, owner: owner.pid, dir }, 'borrowing the embedded PostgreSQL already running; its owner stops it');
    } else {
      writeOwner(dir, token);
      log.info({ pid: running.pid, port: running.port, dir }, 'claimed the embedded PostgreSQL left running by a process that is gone; this process stops it');
    }
    return running;
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
  writeOwner(dir, token);
  const adminUrl = urlFor(opts.port, 'postgres');
  try {
    await waitReady(adminUrl, pid, 60_000);
  } catch (err) {
    await stopServer(pid, log).catch(() => {});
    clearOwner(dir);
    throw new AppError(
      'embedded_postgres_failed',
      `the embedded PostgreSQL did not start on port ${opts.port}; is the port taken? (set EMBEDDED_PG_PORT, or DATABASE_URL) log: ${logPath}`,
      { cause: err },
    );
  }
  await ensureDatabase(adminUrl, database);
  log.info({ pid, port: opts.port, dir }, 'embedded PostgreSQL started');
  return { pid, port: opts.port };
}

function handle(dir: string, pid: number, port: number, database: string, token: string, log: Logger): EmbeddedPostgres {
  const adminUrl = urlFor(port, 'postgres');
  let released: Promise<void> | undefined;
  return {
    url: urlFor(port, database),
    adminUrl,
    pid,
    dir,
    get owned() {
      return isOwner(readOwner(dir), token);
    },
    ownerPid() {
      const owner = readOwner(dir);
      return ownerAlive(owner) ? owner.pid : undefined;
    },
    running: () => isProcessAlive(pid),
    async stop() {
      await withOwnerLock(dir, async () => {
        if (!isOwner(readOwner(dir), token)) return;
        await stopServer(pid, log);
        clearOwner(dir);
      });
    },
    release() {
      released ??= withOwnerLock(dir, async () => {
        const owner = readOwner(dir);
        const mine = isOwner(owner, token);
        if (!mine && ownerAlive(owner)) return;
        if (!isProcessAlive(pid)) {
          if (mine) clearOwner(dir);
          return;
        }
        const others = await otherClients(adminUrl);
        if (others !== undefined && others > 0) {
          // Stopping now would pull the database from under them (a `npm start` that borrowed it).
          if (mine) clearOwner(dir);
          log.info({ pid, clients: others }, 'leaving the embedded PostgreSQL running: other clients still use it; the last of them stops it');
          return;
        }
        await stopServer(pid, log);
        clearOwner(dir);
      });
      return released;
    },
  };
}

export interface ResolvedDatabase {
  url: string;
  embedded?: EmbeddedPostgres;
  /** Done with the database: an embedded server is released (stopped only by its owner, see `release`). */
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
}): Promise<ResolvedDatabase> {
  if (opts.databaseUrl === undefined) throw new ConfigError([DATABASE_URL_MISSING]);
  if (opts.databaseUrl !== EMBEDDED_DATABASE) return { url: opts.databaseUrl, stop: async () => {} };
  const embedded = await startEmbeddedPostgres({ dir: opts.embeddedDir, port: opts.embeddedPort, log: opts.log });
  return { url: embedded.url, embedded, stop: () => embedded.release() };
}

export const DATABASE_URL_MISSING =
  'DATABASE_URL is not set: set it to your PostgreSQL, e.g. postgres://wombat:secret@db-host:5432/wombat (or DATABASE_URL=embedded for a private PostgreSQL under EMBEDDED_PG_DIR, local use only)';
