import { execFile, spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { AppError } from '../platform/errors.ts';
import { WOMBAT_SCHEMAS } from './dump.ts';

const run = promisify(execFile);

/** The major version of the `pg_dump` (or `pg_restore`) on the PATH; undefined when there is none. */
export async function clientMajor(program: 'pg_dump' | 'pg_restore'): Promise<number | undefined> {
  try {
    const { stdout } = await run(program, ['--version'], { timeout: 10_000 });
    const m = /\(PostgreSQL\)\s+(\d+)/.exec(stdout);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The URL without its password, which goes to the child's environment instead (PGPASSWORD),
 * so that it never shows in the process list.
 */
function connection(url: string): { dbname: string; env: NodeJS.ProcessEnv } {
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  return { dbname: u.toString(), env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) } };
}

function collect(child: ReturnType<typeof spawn>, what: string): Promise<void> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4000)));
  return new Promise((resolve, reject) => {
    child.on('error', (err) => reject(new AppError('backup_tool_failed', `${what} could not start: ${err.message}`, { cause: err })));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new AppError('backup_tool_failed', `${what} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`));
    });
  });
}

/** pg_dump's custom format of Wombat's schemas, streamed to `out`. */
export async function dumpWithPgDump(url: string, out: Writable, signal?: AbortSignal): Promise<void> {
  const { dbname, env } = connection(url);
  const child = spawn('pg_dump', ['--format=custom', '--no-owner', '--no-privileges', ...WOMBAT_SCHEMAS.map((s) => `--schema=${s}`), `--dbname=${dbname}`], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(signal ? { signal } : {}),
  });
  const done = collect(child, 'pg_dump');
  child.stdout!.pipe(out);
  await done;
  await new Promise<void>((resolve, reject) => {
    if (out.writableFinished) return resolve();
    out.once('finish', resolve);
    out.once('error', reject);
  });
}

/** pg_restore of a custom-format file into `url`, in one transaction. */
export async function restoreWithPgRestore(url: string, file: string): Promise<void> {
  if ((await clientMajor('pg_restore')) === undefined) throw new AppError('backup_tool_missing', `${file} is a pg_dump file and no pg_restore is on the PATH: install PostgreSQL's client tools`);
  const { dbname, env } = connection(url);
  const child = spawn('pg_restore', ['--no-owner', '--no-privileges', '--single-transaction', '--exit-on-error', `--dbname=${dbname}`, file], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  await collect(child, 'pg_restore');
}

/** Reads a custom-format file's table of contents (pg_restore --list): it fails on a damaged file. */
export async function listWithPgRestore(file: string): Promise<void> {
  if ((await clientMajor('pg_restore')) === undefined) throw new AppError('backup_tool_missing', `${file} is a pg_dump file and no pg_restore is on the PATH to read it: install PostgreSQL's client tools`);
  const child = spawn('pg_restore', ['--list', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  await collect(child, 'pg_restore --list');
}
