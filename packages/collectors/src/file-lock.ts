import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import lockfile from 'proper-lockfile';
import { AppError, createSql } from '@wombat/core/platform';
import { sleep } from './rate-limit.ts';

/**
 * Cross-process exclusive lock on a data file.
 *
 * With a database: a PostgreSQL advisory lock on the file's absolute path, held
 * on one connection for the write. PostgreSQL lets one holder in, on any host,
 * and frees the lock when the holder's connection ends (a SIGKILLed writer). The
 * lock directory below is then taken as well, so that a script run without a
 * database on the same files is excluded too.
 *
 * Without one (a script run with Parquet only): proper-lockfile, a directory
 * `<file>.lock` created atomically (mkdir) whose mtime the holder refreshes every
 * staleMs / 2; a lock whose mtime is older than staleMs belongs to a dead or
 * stalled holder and may be broken, on any host, whatever the pids. A lock whose
 * holder is on this host and no longer exists (SIGKILL) is broken at once: a
 * missing pid proves death, while a reused pid only delays the break to staleMs.
 * The holder writes its id into the lock and checks it is still there right
 * before it replaces the file (`assertHeld`): if two waiters broke the same dead
 * lock at once, or the holder stalled past staleMs and lost it, the one that lost
 * it writes nothing and takes the lock again.
 */
export interface FileLockOptions {
  timeoutMs?: number;
  /** proper-lockfile only: a lock not refreshed for this long is broken (at least 2000). */
  staleMs?: number;
  signal?: AbortSignal;
  /** When set, a PostgreSQL advisory lock is used instead of the lock directory. */
  db?: Kysely<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /**
   * The database's session address (DATABASE_SESSION_URL): the advisory lock is then held
   * on a connection of its own to it, opened for the write, as a session lock needs (a
   * transaction pooler would hand the lock's session to others between statements).
   */
  sessionUrl?: string;
}

export interface HeldLock {
  /** Throws LockLostError when the lock is no longer ours: call it right before replacing the file. */
  assertHeld(): Promise<void>;
}

export class LockLostError extends AppError {
  constructor(file: string) {
    super('lock_lost', `the lock of ${file} was taken over (its holder stalled or two waiters broke it at once); retrying`);
    this.name = 'LockLostError';
  }
}

const LOCK_ATTEMPTS = 5;

/** proper-lockfile's fs, except that a lock is removed with the owner file inside it. */
const lockFs = {
  ...fs,
  rmdir: (p: string, cb: (err: NodeJS.ErrnoException | null) => void) => fs.rm(p, { recursive: true, force: true }, cb),
  rmdirSync: (p: string) => fs.rmSync(p, { recursive: true, force: true }),
};

export async function withFileLock<T>(file: string, fn: (lock: HeldLock) => Promise<T>, opts: FileLockOptions = {}): Promise<T> {
  const absolute = path.resolve(file);
  for (let attempt = 1; ; attempt++) {
    try {
      // With a database, the lock directory is taken too, under the advisory lock: a script run
      // without a database on the same files then still excludes (and is excluded by) the workers.
      const db = opts.db;
      if (opts.sessionUrl) return await withSessionAdvisoryLock(absolute, () => withLockDir(absolute, fn, opts), opts.sessionUrl, opts);
      return db ? await withAdvisoryLock(absolute, () => withLockDir(absolute, fn, opts), db, opts) : await withLockDir(absolute, fn, opts);
    } catch (err) {
      if (!(err instanceof LockLostError) || attempt >= LOCK_ATTEMPTS) throw err;
    }
  }
}

async function withAdvisoryLock<T>(file: string, fn: (lock: HeldLock) => Promise<T>, db: Kysely<any>, opts: FileLockOptions): Promise<T> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  const key = `wombat.file:${file}`;
  // One connection for lock, write and unlock: an advisory lock belongs to its session.
  return db.connection().execute(async (conn) => {
    await untilLocked(async () => (await sql<{ ok: boolean }>`select pg_try_advisory_lock(hashtextextended(${key}, 0)) as ok`.execute(conn)).rows[0]?.ok === true, file, deadline, timeoutMs, opts);
    try {
      return await fn({ assertHeld: async () => {} });
    } finally {
      await sql`select pg_advisory_unlock(hashtextextended(${key}, 0))`.execute(conn);
    }
  });
}

async function withSessionAdvisoryLock<T>(file: string, fn: (lock: HeldLock) => Promise<T>, sessionUrl: string, opts: FileLockOptions): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  const key = `wombat.file:${file}`;
  // One connection, one session: lock, write and unlock; its end frees the lock in every case.
  const conn = createSql({ url: sessionUrl, poolSize: 1, applicationName: 'wombat-file-lock' });
  try {
    await untilLocked(async () => (await conn<{ ok: boolean }[]>`select pg_try_advisory_lock(hashtextextended(${key}, 0)) as ok`)[0]?.ok === true, file, deadline, timeoutMs, opts);
    try {
      return await fn({ assertHeld: async () => {} });
    } finally {
      await conn`select pg_advisory_unlock(hashtextextended(${key}, 0))`.catch(() => {});
    }
  } finally {
    await conn.end({ timeout: 1 });
  }
}

async function withLockDir<T>(file: string, fn: (lock: HeldLock) => Promise<T>, opts: FileLockOptions): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const staleMs = Math.max(2000, opts.staleMs ?? 10_000);
  const lockPath = `${file}.lock`;
  const ownerPath = path.join(lockPath, 'owner');
  const id = randomBytes(8).toString('hex');
  const me: Owner = { id, pid: process.pid, host: hostname() };
  const deadline = Date.now() + timeoutMs;
  let compromised: Error | undefined;
  let release: (() => Promise<void>) | undefined;
  let delayMs = 5;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      release = await lockfile.lock(file, {
        lockfilePath: lockPath,
        realpath: false,
        fs: lockFs,
        stale: staleMs,
        update: staleMs / 2,
        retries: 0,
        // Default: throw from a timer (crash). A late refresh (a long synchronous encode) is not a
        // loss by itself: assertHeld decides by the owner id in the lock.
        onCompromised: (err) => {
          compromised = err;
        },
      });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      if (await holderIsDead(ownerPath)) {
        await rm(lockPath, { recursive: true, force: true });
        continue;
      }
    }
    if (Date.now() > deadline) throw new AppError('lock_timeout', `could not lock ${file} within ${timeoutMs} ms: ${lockPath} is held and refreshed by another process`);
    await sleep(delayMs, opts.signal);
    delayMs = Math.min(100, delayMs * 2);
  }
  const ours = async () => (await readOwner(ownerPath))?.id === id;
  try {
    await writeFile(ownerPath, JSON.stringify(me));
    return await fn({
      assertHeld: async () => {
        if (!(await ours())) throw new LockLostError(file);
      },
    });
  } finally {
    // After a late refresh proper-lockfile no longer knows the lock: remove it if it is still ours.
    if (compromised) {
      if (await ours()) await rm(lockPath, { recursive: true, force: true });
    } else await release().catch(() => {});
  }
}

interface Owner {
  id: string;
  pid: number;
  host: string;
}

async function readOwner(ownerPath: string): Promise<Owner | undefined> {
  try {
    const o = JSON.parse(await readFile(ownerPath, 'utf8')) as Owner;
    return typeof o.id === 'string' ? o : undefined;
  } catch {
    return undefined;
  }
}

/** The holder ran on this host and its process is gone. Unknown (not yet written, other host): no. */
async function holderIsDead(ownerPath: string): Promise<boolean> {
  const owner = await readOwner(ownerPath);
  if (!owner || owner.host !== hostname() || owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Tries `tryLock` with a doubling pause (5 to 100 ms) until it succeeds, the signal aborts, or the deadline passes. */
async function untilLocked(tryLock: () => Promise<boolean>, file: string, deadline: number, timeoutMs: number, opts: FileLockOptions): Promise<void> {
  let delayMs = 5;
  for (;;) {
    opts.signal?.throwIfAborted();
    if (await tryLock()) return;
    if (Date.now() > deadline) throw new AppError('lock_timeout', `could not lock ${file} within ${timeoutMs} ms: another process holds its PostgreSQL advisory lock`);
    await sleep(delayMs, opts.signal);
    delayMs = Math.min(100, delayMs * 2);
  }
}
