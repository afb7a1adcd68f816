import { constants as zlibConstants, createGunzip, createGzip, createZstdCompress, createZstdDecompress } from 'node:zlib';
import type { Transform } from 'node:stream';
import { AppError } from '../platform/errors.ts';

/**
 * Wombat's own backup format, for servers where no compatible pg_dump is at hand (the
 * embedded PostgreSQL ships none). One compressed stream (zstd, or gzip where the Node
 * has no zstd) holding, in order:
 *
 *   WOMBAT-BACKUP 1\n                          the magic line and the format version
 *   {header JSON}\n                            BackupHeader, one line
 *   per table, in the header's order:
 *     TABLE {"schema","name"}\n
 *     the rows as COPY ... TO STDOUT text format, one line per row
 *     \.\n                                     COPY's own end marker (never a data line)
 *   END\n
 *
 * Every table's rows come from one repeatable-read snapshot, so the file is one instant
 * of the database. deploy/README.md ("Backups and restore") describes it for operators.
 */
export const FORMAT_VERSION = 1;
export const MAGIC = 'WOMBAT-BACKUP';

export interface BackupTable {
  schema: string;
  name: string;
  /** Copied columns, in order (generated columns are left out: they are computed again). */
  columns: string[];
  rows: number;
}

export interface BackupSequence {
  schema: string;
  name: string;
  lastValue: number;
  isCalled: boolean;
}

export interface BackupHeader {
  format: 'wombat';
  formatVersion: number;
  /** The newest Wombat migration applied to the database (wombat.schema_migrations). */
  migrationVersion: number;
  /** pg-boss's schema version (pgboss.version). */
  bossVersion: number | null;
  createdAt: string;
  serverVersion: string;
  serverVersionNum: number;
  compression: Compression;
  tables: BackupTable[];
  sequences: BackupSequence[];
}

export type Compression = 'zstd' | 'gzip';
export type BackupFormat = 'wombat' | 'pg_dump';

/** zstd where this Node has it (Node 22.15+, 23.8+), gzip otherwise. */
export const DEFAULT_COMPRESSION: Compression = typeof createZstdCompress === 'function' ? 'zstd' : 'gzip';

export function compressor(c: Compression): Transform {
  if (c === 'zstd') return createZstdCompress({ params: { [zlibConstants.ZSTD_c_compressionLevel]: 3 } });
  return createGzip({ level: 6 });
}

export function decompressor(c: Compression): Transform {
  if (c === 'zstd') {
    if (typeof createZstdDecompress !== 'function') throw new AppError('backup_unreadable', 'this backup is zstd-compressed and this Node has no zstd: run Wombat on Node 22.15 or newer');
    return createZstdDecompress();
  }
  return createGunzip();
}

const EXTENSIONS: Record<string, { format: BackupFormat; compression: Compression | null }> = {
  '.wombat.zst': { format: 'wombat', compression: 'zstd' },
  '.wombat.gz': { format: 'wombat', compression: 'gzip' },
  '.pgdump': { format: 'pg_dump', compression: null },
};

const NAME = /^wombat-(\d{8}T\d{6}Z)(\.wombat\.zst|\.wombat\.gz|\.pgdump)$/;

/** `wombat-20261207T033000Z.wombat.zst`: the time (UTC) in the name, so names sort by time. */
export function backupFileName(at: Date, format: BackupFormat, compression: Compression): string {
  const stamp = at.toISOString().replace(/\.\d+Z$/, 'Z').replaceAll('-', '').replaceAll(':', '');
  return `wombat-${stamp}${format === 'pg_dump' ? '.pgdump' : `.wombat.${compression === 'zstd' ? 'zst' : 'gz'}`}`;
}

/** What a backup's file name says: its time, format and compression; undefined for other files. */
export function parseBackupFileName(name: string): { at: Date; format: BackupFormat; compression: Compression | null } | undefined {
  const m = NAME.exec(name);
  if (!m) return undefined;
  const s = m[1]!;
  const at = new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`);
  return { at, ...EXTENSIONS[m[2]!]! };
}

/** The format a file is in, by its name, or by its first bytes when named otherwise. */
export function formatOf(name: string, firstBytes: Buffer): { format: BackupFormat; compression: Compression | null } {
  const byName = parseBackupFileName(name.split('/').at(-1)!);
  if (byName) return byName;
  if (firstBytes.subarray(0, 5).toString('latin1') === 'PGDMP') return { format: 'pg_dump', compression: null };
  if (firstBytes.readUInt32LE(0) === 0xfd2fb528) return { format: 'wombat', compression: 'zstd' };
  if (firstBytes[0] === 0x1f && firstBytes[1] === 0x8b) return { format: 'wombat', compression: 'gzip' };
  throw new AppError('backup_unreadable', `${name} is not a Wombat backup (neither Wombat's own format nor a pg_dump custom-format file)`);
}

export const quoteIdent = (s: string) => `"${s.replaceAll('"', '""')}"`;
export const tableRef = (t: { schema: string; name: string }) => `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
