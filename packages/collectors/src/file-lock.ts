import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { sleep } from './rate-limit.ts';

/**
 * Cross-process exclusive lock on a file, held as `<file>.lock` created with
 * O_EXCL. Chosen over Postgres advisory locks because the scripts may run
 * without a database, and the lock lives next to the data it protects.
 *
 * A lock whose owner died (SIGKILL) is stale: on the same host its pid no longer
 * exists, elsewhere it is older than `staleMs`. A stale lock is broken by
 * renaming it aside (atomic) and checking that what was renamed is still the
 * stale lock; if a live owner's lock was taken by mistake it is put back.
 */
export interface FileLockOptions {
  timeoutMs?: number;
  staleMs?: number;
  signal?: AbortSignal;
}

interface Owner {
  id: string;
  pid: number;
  host: string;
  at: number;
}

export async function withFileLock<T>(file: string, fn: () => Promise<T>, opts: FileLockOptions = {}): Promise<T> {
  const lockPath = `${file}.lock`;
  const me: Owner = { id: randomBytes(8).toString('hex'), pid: process.pid, host: hostname(), at: Date.now() };
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  let delayMs = 5;
  for (;;) {
    opts.signal?.throwIfAborted();
    if (await tryCreate(lockPath, me)) break;
    const owner = await readOwner(lockPath);
    if (owner && isStale(owner, opts.staleMs ?? 600_000)) {
      await breakStale(lockPath, owner);
      continue;
    }
    if (Date.now() > deadline) throw new Error(`could not lock ${file} within ${opts.timeoutMs ?? 120_000} ms (held by pid ${owner?.pid ?? '?'} on ${owner?.host ?? '?'})`);
    await sleep(delayMs, opts.signal);
    delayMs = Math.min(100, delayMs * 2);
  }
  try {
    return await fn();
  } finally {
    const owner = await readOwner(lockPath);
    if (owner?.id === me.id) await unlink(lockPath).catch(() => {});
  }
}

async function tryCreate(lockPath: string, me: Owner): Promise<boolean> {
  try {
    const fh = await open(lockPath, 'wx');
    try {
      await fh.writeFile(JSON.stringify(me));
    } finally {
      await fh.close();
    }
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

async function readOwner(lockPath: string): Promise<Owner | undefined> {
  try {
    const parsed = JSON.parse(await readFile(lockPath, 'utf8')) as Owner;
    return typeof parsed.id === 'string' ? parsed : undefined;
  } catch {
    // Missing, or created but not yet written: treat as held, not stale.
    return undefined;
  }
}

function isStale(owner: Owner, staleMs: number): boolean {
  if (owner.host === hostname()) {
    try {
      process.kill(owner.pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  return Date.now() - owner.at > staleMs;
}

async function breakStale(lockPath: string, stale: Owner): Promise<void> {
  const aside = `${lockPath}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(lockPath, aside);
  } catch {
    return;
  }
  const taken = await readOwner(aside);
  if (taken && taken.id !== stale.id) {
    // Someone broke it first and took the lock: give theirs back.
    await link(aside, lockPath).catch(() => {});
  }
  await unlink(aside).catch(() => {});
}
