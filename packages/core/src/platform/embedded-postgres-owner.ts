/**
 * Who may stop an embedded PostgreSQL. The process that started the server is its
 * owner and says so in `<dir>.owner` (its pid and the kernel's start time of that
 * pid, so a recycled pid is not mistaken for it). Any other process borrows the
 * server and never stops it. A server whose owner is gone (killed, or it left while
 * others were still connected) is an orphan: the next process to find it claims it.
 *
 * Finding, claiming and stopping happen under `<dir>.owner.lock`, so a process never
 * connects to a server that another is stopping at that moment.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { isProcessAlive } from './embedded-postgres-files.ts';

export interface Owner {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot); absent where there is no /proc. */
  startTicks?: number;
  /** Which handle in that process owns it: a second handle in the same process borrows. */
  token?: string;
}

/** When `pid` started, from /proc (Linux); undefined elsewhere or when it is gone. */
function startTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces, so count fields after the ')'.
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isFinite(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}

function thisProcess(token: string): Owner {
  const ticks = startTicks(process.pid);
  return ticks === undefined ? { pid: process.pid, token } : { pid: process.pid, startTicks: ticks, token };
}

export function ownerFile(dir: string): string {
  return `${dir}.owner`;
}

export function readOwner(dir: string): Owner | undefined {
  try {
    const owner = JSON.parse(readFileSync(ownerFile(dir), 'utf8')) as Owner;
    return Number.isInteger(owner.pid) && owner.pid > 0 ? owner : undefined;
  } catch {
    return undefined;
  }
}

/** True while the recorded owner still runs (the same process, not a later one given its pid). */
export function ownerAlive(owner: Owner | undefined): owner is Owner {
  if (!owner || !isProcessAlive(owner.pid)) return false;
  if (owner.startTicks === undefined) return true;
  const ticks = startTicks(owner.pid);
  return ticks === undefined || ticks === owner.startTicks;
}

export function isOwner(owner: Owner | undefined, token: string): boolean {
  return owner?.pid === process.pid && owner.token === token;
}

/** Records this handle (`token`) of this process as the owner. */
export function writeOwner(dir: string, token: string): void {
  const tmp = `${ownerFile(dir)}.${process.pid}`;
  writeFileSync(tmp, JSON.stringify(thisProcess(token)));
  renameSync(tmp, ownerFile(dir));
}

export function clearOwner(dir: string): void {
  rmSync(ownerFile(dir), { force: true });
}

/** A short critical section across processes: mkdir of `lockDir` is atomic; a dead holder's lock is broken. */
export async function withDirLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(path.dirname(lockDir), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(path.join(lockDir, 'pid'), String(process.pid));
      break;
    } catch {
      try {
        const holder = Number(readFileSync(path.join(lockDir, 'pid'), 'utf8'));
        if (Number.isInteger(holder) && holder > 0 && !isProcessAlive(holder)) rmSync(lockDir, { recursive: true, force: true });
      } catch {
        // the holder is between mkdir and writing its pid, or is just releasing it
      }
      await sleep(50);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

/** The owner file's critical section (reading, claiming or clearing the owner). */
export function withOwnerLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  return withDirLock(`${dir}.owner.lock`, fn);
}

/**
 * Client connections to the server other than the one asking: the services of an
 * `npm start`, a script, a psql session. Undefined when the server does not answer.
 */
export async function otherClients(adminUrl: string): Promise<number | undefined> {
  const sql = postgres(adminUrl, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where backend_type = 'client backend' and pid <> pg_backend_pid()`;
    return row!.n;
  } catch {
    return undefined;
  } finally {
    await sql.end({ timeout: 1 });
  }
}
