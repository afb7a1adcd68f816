import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createSql } from '../platform/db.ts';
import { AppError } from '../platform/errors.ts';
import type { Logger } from '../platform/logger.ts';
import type { BackupFormatSetting } from './config.ts';
import { dumpWombat } from './dump.ts';
import { checkChecksum, pruneBackups, writeAtomically, type ChecksumState } from './files.ts';
import { backupFileName, DEFAULT_COMPRESSION, type BackupFormat, type BackupHeader } from './format.ts';
import { clientMajor, dumpWithPgDump, listWithPgRestore, restoreWithPgRestore } from './pg-dump.ts';
import { backupFormatOf, readThrough } from './read.ts';
import { countRows, migrateForward, restoreWombatBackup, type RestoreResult } from './restore.ts';

export interface BackupOptions {
  url: string;
  dir: string;
  format: BackupFormatSetting;
  keepDaily: number;
  keepWeekly: number;
  log: Logger;
  now?: () => Date;
  /** Wombat's format: back up what this exported snapshot (pg_export_snapshot()) sees. */
  snapshot?: string;
  /** Stops the backup (the job's timeout, a cancel, shutdown): nothing is left but the partial file, removed. */
  signal?: AbortSignal;
}

/** What a backup job records as its run's result. */
export interface BackupResult {
  file: string;
  format: BackupFormat;
  bytes: number;
  durationMs: number;
  sha256: string;
  /** Wombat's format only: every table with its rows. pg_dump's files say it themselves. */
  tables: number | null;
  rows: number | null;
  perTable: Record<string, number> | null;
  migrationVersion: number | null;
  removed: string[];
  /** Why the format was chosen (auto). */
  reason: string;
}

async function serverMajor(url: string): Promise<number> {
  const sql = createSql({ url, poolSize: 1, applicationName: 'wombat-backup', connectTimeoutMs: 10_000 });
  try {
    const [r] = await sql<{ num: number }[]>`select current_setting('server_version_num')::int as num`;
    return Math.floor(r!.num / 10_000);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * pg_dump's custom format when one as new as the server is on the PATH (an older one refuses
 * a newer server; a newer one reads older servers), Wombat's own format otherwise. The
 * embedded PostgreSQL ships no pg_dump, so it gets Wombat's format unless one is installed.
 */
export async function chooseFormat(url: string, setting: BackupFormatSetting): Promise<{ format: BackupFormat; reason: string }> {
  if (setting === 'wombat') return { format: 'wombat', reason: 'BACKUP_FORMAT=wombat' };
  const [client, server] = await Promise.all([clientMajor('pg_dump'), serverMajor(url)]);
  if (client !== undefined && client >= server) return { format: 'pg_dump', reason: `pg_dump ${client} on the PATH serves PostgreSQL ${server}` };
  if (setting === 'pg_dump') {
    throw new AppError('backup_tool_missing', client === undefined ? 'BACKUP_FORMAT=pg_dump but no pg_dump is on the PATH' : `BACKUP_FORMAT=pg_dump but the pg_dump on the PATH is ${client}, older than the server (${server})`);
  }
  return { format: 'wombat', reason: client === undefined ? 'no pg_dump on the PATH' : `pg_dump ${client} is older than PostgreSQL ${server}` };
}

/** One backup into `dir` (written atomically, with its checksum), then retention. */
export async function backupDatabase(opts: BackupOptions): Promise<BackupResult> {
  const started = performance.now();
  const at = opts.now?.() ?? new Date();
  await mkdir(opts.dir, { recursive: true, mode: 0o750 });
  const { format, reason } = await chooseFormat(opts.url, opts.format);
  const name = backupFileName(at, format, DEFAULT_COMPRESSION);
  const written = await writeAtomically(opts.dir, name, async (out) => {
    if (format === 'pg_dump') {
      await dumpWithPgDump(opts.url, out, opts.signal);
      return undefined;
    }
    return (await dumpWombat({ url: opts.url, out, compression: DEFAULT_COMPRESSION, now: () => at, ...(opts.snapshot ? { snapshot: opts.snapshot } : {}), ...(opts.signal ? { signal: opts.signal } : {}) })).header;
  });
  const header = written.value;
  const removed = await pruneBackups(opts.dir, opts.keepDaily, opts.keepWeekly);
  const result: BackupResult = {
    file: path.join(opts.dir, name),
    format,
    bytes: written.bytes,
    durationMs: Math.round(performance.now() - started),
    sha256: written.sha256,
    tables: header ? header.tables.length : null,
    rows: header ? header.tables.reduce((n, t) => n + t.rows, 0) : null,
    perTable: header ? Object.fromEntries(header.tables.map((t) => [`${t.schema}.${t.name}`, t.rows])) : null,
    migrationVersion: header ? header.migrationVersion : null,
    removed,
    reason,
  };
  opts.log.info({ file: result.file, format, bytes: result.bytes, durationMs: result.durationMs, rows: result.rows, removed }, 'database backup written');
  return result;
}

export interface VerifyResult {
  file: string;
  format: BackupFormat;
  checksum: ChecksumState;
  /** Wombat's format: the header, every table read through and counted. */
  header: BackupHeader | null;
}

/** Checks a backup: its checksum, then (Wombat's format) that it reads to its end with the rows its header says. */
export async function verifyBackup(file: string): Promise<VerifyResult> {
  const { format } = await backupFormatOf(file);
  const { state, expected, actual } = await checkChecksum(file);
  if (state === 'mismatch') throw new AppError('backup_checksum_mismatch', `${file} does not match its checksum file (expected ${expected}, the file is ${actual}): it is damaged`);
  const header = format === 'wombat' ? await readThrough(file) : null;
  if (format === 'pg_dump') await listWithPgRestore(file);
  return { file, format, checksum: state, header };
}

/** Restores either format into `url` (see restoreWombatBackup; pg_dump files go through pg_restore). */
export async function restoreBackup(opts: { file: string; url: string; log: Logger; force?: boolean }): Promise<RestoreResult | { format: 'pg_dump'; migratedForward: string[]; tables: RestoreResult['tables'] }> {
  const { format } = await backupFormatOf(opts.file);
  if (format === 'wombat') return restoreWombatBackup(opts);
  const sum = await checkChecksum(opts.file);
  if (sum.state === 'mismatch') throw new AppError('backup_checksum_mismatch', `${opts.file} does not match its checksum file: it is damaged; nothing was restored`);
  if (sum.state === 'missing' && !opts.force) throw new AppError('backup_checksum_missing', `${opts.file}.sha256 is missing; restore with --force to go ahead unchecked`);
  const sql = createSql({ url: opts.url, poolSize: 1, applicationName: 'wombat-restore', connectTimeoutMs: 10_000 });
  try {
    const [r] = await sql<{ n: number }[]>`select count(*)::int as n from pg_namespace where nspname in ('wombat', 'pgboss')`;
    if (r!.n > 0) {
      if (!opts.force) throw new AppError('restore_target_not_empty', 'the target database is not empty; restore into a new database, or add --force to replace its Wombat schemas');
      await sql`drop schema if exists wombat cascade`;
      await sql`drop schema if exists pgboss cascade`;
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
  await restoreWithPgRestore(opts.url, opts.file);
  return { format: 'pg_dump', migratedForward: await migrateForward(opts.url, opts.log), tables: await countRows(opts.url) };
}
