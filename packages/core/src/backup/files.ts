import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppError } from '../platform/errors.ts';
import { parseBackupFileName, type BackupFormat } from './format.ts';

async function fsyncDir(dir: string): Promise<void> {
  const fd = await open(dir, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

/**
 * Writes `name` in `dir` so that it is either whole or absent: under a temporary name
 * (`.<name>.partial`), fsynced, renamed, and the directory fsynced so that the rename
 * survives a crash. Its SHA-256 is computed on the way and written beside it as
 * `<name>.sha256` (sha256sum's format) the same way, after the file itself.
 */
export async function writeAtomically<T>(dir: string, name: string, produce: (out: Writable) => Promise<T>): Promise<{ value: T; bytes: number; sha256: string }> {
  const final = path.join(dir, name);
  const temp = path.join(dir, `.${name}.partial`);
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    const file = createWriteStream(temp, { flags: 'w', mode: 0o640 });
    const tee = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    const fileDone = pipeline(tee, file);
    fileDone.catch(() => {});
    const value = await produce(tee);
    await fileDone;
    // Any descriptor of the file flushes its data; the stream's own is closed by now.
    const fh = await open(temp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    const sha256 = hash.digest('hex');
    await rename(temp, final);
    await writeSmallFile(dir, `${name}.sha256`, `${sha256}  ${name}\n`);
    await fsyncDir(dir);
    return { value, bytes, sha256 };
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

async function writeSmallFile(dir: string, name: string, text: string): Promise<void> {
  const temp = path.join(dir, `.${name}.partial`);
  const fh = await open(temp, 'w', 0o640);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(temp, path.join(dir, name));
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export type ChecksumState = 'ok' | 'mismatch' | 'missing';

/** The file's SHA-256 against `<file>.sha256`. */
export async function checkChecksum(file: string): Promise<{ state: ChecksumState; expected?: string; actual: string }> {
  const actual = await sha256File(file);
  let text: string;
  try {
    text = await readFile(`${file}.sha256`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing', actual };
    throw err;
  }
  const expected = /^([0-9a-f]{64})\s/i.exec(text)?.[1]?.toLowerCase();
  if (!expected) throw new AppError('backup_unreadable', `${file}.sha256 is not in sha256sum's format ("<64 hex digits>  <name>")`);
  return { state: expected === actual ? 'ok' : 'mismatch', expected, actual };
}

export interface BackupFile {
  name: string;
  path: string;
  at: Date;
  format: BackupFormat;
  bytes: number;
  /** Set when listing was asked to check checksums. */
  checksum?: ChecksumState;
}

/** The backups in `dir`, newest first, by their names (other files are ignored). */
export async function listBackupFiles(dir: string, opts: { checksums?: boolean } = {}): Promise<BackupFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new AppError('backup_dir_not_found', `the backup directory ${dir} does not exist: create it or fix BACKUP_DIR`);
    throw err;
  }
  const out: BackupFile[] = [];
  for (const name of names) {
    const parsed = parseBackupFileName(name);
    if (!parsed) continue;
    const p = path.join(dir, name);
    const s = await stat(p);
    out.push({ name, path: p, at: parsed.at, format: parsed.format, bytes: s.size, ...(opts.checksums ? { checksum: (await checkChecksum(p)).state } : {}) });
  }
  return out.sort((a, b) => b.at.getTime() - a.at.getTime());
}

/** ISO week of `d` in UTC, as "2026-W49". */
function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

/**
 * Which backups retention keeps: the newest of each of the `keepDaily` newest days and of
 * each of the `keepWeekly` newest ISO weeks (UTC), and always the newest one. Pure.
 */
export function backupsToKeep<B extends { at: Date }>(newestFirst: readonly B[], keepDaily: number, keepWeekly: number): Set<B> {
  const keep = new Set<B>();
  if (newestFirst[0]) keep.add(newestFirst[0]);
  const pick = (key: (d: Date) => string, n: number) => {
    const seen = new Set<string>();
    for (const b of newestFirst) {
      const k = key(b.at);
      if (seen.has(k)) continue;
      if (seen.size >= n) break;
      seen.add(k);
      keep.add(b);
    }
  };
  pick((d) => d.toISOString().slice(0, 10), keepDaily);
  pick(isoWeek, keepWeekly);
  return keep;
}

/** Deletes the backups (and their checksum files) retention does not keep; returns their names. */
export async function pruneBackups(dir: string, keepDaily: number, keepWeekly: number): Promise<string[]> {
  const all = await listBackupFiles(dir);
  const keep = backupsToKeep(all, keepDaily, keepWeekly);
  const removed: string[] = [];
  for (const b of all) {
    if (keep.has(b)) continue;
    await rm(b.path, { force: true });
    await rm(`${b.path}.sha256`, { force: true });
    removed.push(b.name);
  }
  if (removed.length > 0) await fsyncDir(dir);
  return removed;
}
