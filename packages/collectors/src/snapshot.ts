import { copyFile, link, lstat, mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { optionalStr, resolveFromRoot } from '@wombat/core/platform';
import { backupFields, backupsToKeep } from '@wombat/core/backup';

/**
 * Dated snapshots of DATA_ROOT. The Parquet writer never changes a file in place: it
 * writes a new file and renames it over the old one. So a hard link made at any
 * moment holds one complete version of a file, the one that was there when it was
 * linked, and a snapshot of a hundred gigabytes costs a directory tree of links, not
 * a copy of the bytes. Each file is consistent; files written while the snapshot is
 * being taken are in it as they were before or after that write. Where links are
 * impossible (another file system, one without hard links) the file is copied, and
 * the result says how many were.
 *
 * Layout: SNAPSHOT_DIR/data-<UTC time>/ holds the tree of DATA_ROOT and a manifest.json;
 * it is built under a hidden name and renamed when complete, so a listed snapshot is
 * always whole.
 */
/** SNAPSHOT_DIR, and the retention the backups have (BACKUP_KEEP_DAILY, BACKUP_KEEP_WEEKLY). */
export const snapshotFields = {
  snapshotDir: optionalStr('SNAPSHOT_DIR', 'directory of the dated DATA_ROOT snapshots (data-snapshot; best on the file system of DATA_ROOT, where they are hard links); unset: no snapshots'),
  backupKeepDaily: backupFields.backupKeepDaily,
  backupKeepWeekly: backupFields.backupKeepWeekly,
};

/** The data-snapshot settings of a configuration, paths absolute; undefined without SNAPSHOT_DIR. */
export function snapshotSettings(c: { dataRoot: string; snapshotDir: string | undefined; backupKeepDaily: number; backupKeepWeekly: number }): { dataRoot: string; snapshotDir: string; retention: Retention } | undefined {
  if (!c.snapshotDir) return undefined;
  return { dataRoot: resolveFromRoot(c.dataRoot), snapshotDir: resolveFromRoot(c.snapshotDir), retention: { keepDaily: c.backupKeepDaily, keepWeekly: c.backupKeepWeekly } };
}

export interface SnapshotResult {
  name: string;
  path: string;
  files: number;
  bytes: number;
  /** Files hard-linked (no bytes copied) and files copied. */
  linked: number;
  copied: number;
  /** Why files were copied rather than linked, when some were. */
  copiedBecause?: string;
  duration_ms: number;
  /** Snapshots removed by retention. */
  removed: string[];
}

export interface SnapshotInfo {
  name: string;
  path: string;
  taken_at: string;
  files: number;
  bytes: number;
  linked: number;
  copied: number;
}

export interface Retention {
  keepDaily: number;
  keepWeekly: number;
}

const PREFIX = 'data-';
const MANIFEST = 'manifest.json';
/** Names like data-2026-12-07T03-45-00Z. */
const NAME = /^data-(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})Z$/;

export function snapshotName(at: Date): string {
  return `${PREFIX}${at.toISOString().slice(0, 19).replace(/:/g, '-')}Z`;
}

function takenAt(name: string): Date | null {
  const m = NAME.exec(name);
  return m ? new Date(`${m[1]}T${m[2]}:${m[3]}:${m[4]}Z`) : null;
}

/** Parquet files and their directories; temporary files of writers in flight and lock files are left out. */
async function* dataFiles(root: string, rel = ''): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(path.join(root, rel), { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(rel, e.name);
    if (e.isDirectory()) yield* dataFiles(root, p);
    else if (e.isFile() && e.name.endsWith('.parquet')) yield p;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * Takes a snapshot of `dataRoot` into `snapshotDir` (both absolute), then applies the
 * retention. `copy: true` copies every file (for file systems whose links would share
 * more than wanted); otherwise a file is copied only where a link fails.
 */
export async function takeSnapshot(opts: { dataRoot: string; snapshotDir: string; now?: Date; retention: Retention; copy?: boolean }): Promise<SnapshotResult> {
  const started = performance.now();
  const root = path.resolve(opts.dataRoot);
  const dir = path.resolve(opts.snapshotDir);
  if (dir === root || dir.startsWith(`${root}${path.sep}`)) throw new Error(`SNAPSHOT_DIR (${dir}) must be outside DATA_ROOT (${root})`);
  await mkdir(dir, { recursive: true });
  const name = snapshotName(opts.now ?? new Date());
  const final = path.join(dir, name);
  const partial = path.join(dir, `.${name}.partial`);
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial);
  let files = 0;
  let bytes = 0;
  let linked = 0;
  let copied = 0;
  let copiedBecause: string | undefined;
  try {
    for await (const rel of dataFiles(root)) {
      const from = path.join(root, rel);
      const to = path.join(partial, rel);
      await mkdir(path.dirname(to), { recursive: true });
      let stat;
      try {
        stat = await lstat(from);
      } catch (err) {
        // Removed since it was listed (a series deleted by hand): not part of this snapshot.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      let done = false;
      if (!opts.copy) {
        try {
          await link(from, to);
          linked++;
          done = true;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') continue;
          if (!['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK'].includes(code ?? '')) throw err;
          copiedBecause ??= code === 'EXDEV' ? 'SNAPSHOT_DIR is on another file system than DATA_ROOT: files were copied' : `hard links failed (${code}): files were copied`;
        }
      } else copiedBecause ??= 'copies were asked for';
      if (!done) {
        try {
          await copyFile(from, to);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        copied++;
      }
      files++;
      bytes += stat.size;
    }
    const manifest = { name, taken_at: (opts.now ?? new Date()).toISOString(), data_root: root, files, bytes, linked, copied };
    await writeFile(path.join(partial, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    await rename(partial, final);
    await fsyncDir(dir);
  } catch (err) {
    await rm(partial, { recursive: true, force: true });
    throw err;
  }
  const removed = await applyRetention(dir, opts.retention);
  return { name, path: final, files, bytes, linked, copied, ...(copiedBecause ? { copiedBecause } : {}), duration_ms: Math.round(performance.now() - started), removed };
}

/** Every complete snapshot in `snapshotDir`, newest first. */
export async function listSnapshots(snapshotDir: string): Promise<SnapshotInfo[]> {
  let names: string[];
  try {
    names = await readdir(snapshotDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: SnapshotInfo[] = [];
  for (const name of names) {
    const at = takenAt(name);
    if (!at) continue;
    const p = path.join(snapshotDir, name);
    let m: Partial<SnapshotInfo> = {};
    try {
      m = JSON.parse(await readFile(path.join(p, MANIFEST), 'utf8')) as Partial<SnapshotInfo>;
    } catch {
      // A snapshot without a readable manifest is listed with what its name says.
    }
    out.push({ name, path: p, taken_at: at.toISOString(), files: Number(m.files ?? 0), bytes: Number(m.bytes ?? 0), linked: Number(m.linked ?? 0), copied: Number(m.copied ?? 0) });
  }
  return out.sort((a, b) => b.taken_at.localeCompare(a.taken_at));
}

/** What the daily and weekly retention keeps of dated items: the backups' rule (backupsToKeep). */
export function retained<T extends { at: Date }>(items: T[], r: Retention): Set<T> {
  return backupsToKeep([...items].sort((a, b) => b.at.getTime() - a.at.getTime()), r.keepDaily, r.keepWeekly);
}

async function applyRetention(dir: string, r: Retention): Promise<string[]> {
  const items = (await listSnapshots(dir)).map((s) => ({ ...s, at: new Date(s.taken_at) }));
  const keep = retained(items, r);
  const removed: string[] = [];
  for (const it of items) {
    if (keep.has(it)) continue;
    await rm(it.path, { recursive: true, force: true });
    removed.push(it.name);
  }
  return removed;
}
