import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { JOB_TYPES } from '../jobs/contracts.ts';
import { BOSS_SCHEMA } from '../platform/boss.ts';
import { createSql, type Sql } from '../platform/db.ts';
import { AppError } from '../platform/errors.ts';
import type { Logger } from '../platform/logger.ts';
import { readMigrations, workspaceMigrations } from '../platform/migrate.ts';
import { migrateAll } from '../setup.ts';
import { stableOutput, WOMBAT_SCHEMAS, type Tx } from './dump.ts';
import { checkChecksum } from './files.ts';
import { quoteIdent, tableRef, type BackupHeader } from './format.ts';
import { openWombatBackup } from './read.ts';

/**
 * pg-boss's version row says what its installed schema is: the restore installs this
 * Wombat's pg-boss, so a backup of another pg-boss version keeps the installed row.
 */
const BOSS_VERSION_TABLE = `${BOSS_SCHEMA}.version`;

export interface RestoreOptions {
  file: string;
  url: string;
  log: Logger;
  /** Restore over a database that holds tables: Wombat's schemas are dropped first. */
  force?: boolean;
}

export interface RestoreResult {
  header: BackupHeader;
  /** Migrations applied after the rows, when the backup was older than this Wombat. */
  migratedForward: string[];
  tables: { schema: string; name: string; rows: number }[];
}

async function userTables(sql: Sql): Promise<number> {
  const [r] = await sql<{ n: number }[]>`
    select count(*)::int as n from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'`;
  return r!.n;
}

/**
 * Restores a Wombat-format backup into the database at `url`: the checksum is checked
 * first, then the schema is rebuilt by Wombat's migrations up to the backup's version
 * (and pg-boss's install), then every table's rows are copied in, in one transaction
 * with user triggers off (candle_series is restored as it was, not recomputed) and
 * foreign keys dropped and added back (validated) around the copy, and every sequence
 * is set to where it was. A backup older than this Wombat is then migrated forward.
 */
export async function restoreWombatBackup(opts: RestoreOptions): Promise<RestoreResult> {
  const log = opts.log.child({ component: 'restore' });
  const sum = await checkChecksum(opts.file);
  if (sum.state === 'mismatch') {
    throw new AppError('backup_checksum_mismatch', `${opts.file} does not match its checksum file (${opts.file}.sha256 says ${sum.expected}, the file is ${sum.actual}): it is damaged or not the file that was backed up; nothing was restored`);
  }
  if (sum.state === 'missing' && !opts.force) {
    throw new AppError('backup_checksum_missing', `${opts.file}.sha256 is missing, so the file cannot be checked; restore with --force to go ahead unchecked`);
  }
  const backup = await openWombatBackup(opts.file);
  try {
    const { header } = backup;
    const latest = (await readMigrations(await workspaceMigrations())).at(-1)!.version;
    if (header.migrationVersion > latest) {
      throw new AppError('backup_too_new', `the backup was taken at migration ${header.migrationVersion}; this Wombat knows up to ${latest}: restore it with a newer Wombat`);
    }
    const sql = createSql({ url: opts.url, poolSize: 1, applicationName: 'wombat-restore', statementTimeoutMs: 0, transactionTimeoutMs: 0, connectTimeoutMs: 10_000 });
    try {
      if ((await userTables(sql)) > 0) {
        if (!opts.force) throw new AppError('restore_target_not_empty', 'the target database is not empty; restore into a new database, or add --force to replace its Wombat schemas');
        for (const schema of WOMBAT_SCHEMAS) await sql.unsafe(`drop schema if exists ${quoteIdent(schema)} cascade`);
        log.warn({ schemas: WOMBAT_SCHEMAS }, 'dropped the target database\'s Wombat schemas (--force)');
      }
      await migrateAll({ url: opts.url, log, upToVersion: header.migrationVersion });
      await copyRows(sql, backup.tables(), header, log);
    } finally {
      await sql.end({ timeout: 5 });
    }
    return { header, migratedForward: await migrateForward(opts.url, log), tables: await countRows(opts.url) };
  } finally {
    backup.close();
  }
}

async function copyRows(sql: Sql, tables: ReturnType<Awaited<ReturnType<typeof openWombatBackup>>['tables']>, header: BackupHeader, log: Logger): Promise<void> {
  await sql.begin(async (tx) => {
    await stableOutput(tx);
    const installed = await tx.unsafe<{ version: number }[]>(`select version from ${quoteIdent(BOSS_SCHEMA)}.version limit 1`);
    const skip = new Set(Number(installed[0]?.version) === header.bossVersion ? [] : [BOSS_VERSION_TABLE]);
    const restored = header.tables.filter((t) => !skip.has(`${t.schema}.${t.name}`));
    const existing = new Set(
      (await tx<{ t: string }[]>`select n.nspname || '.' || c.relname as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
                                  where n.nspname in ${tx([...WOMBAT_SCHEMAS])} and c.relkind in ('r', 'p')`).map((r) => r.t),
    );
    const missing = restored.filter((t) => !existing.has(`${t.schema}.${t.name}`));
    if (missing.length > 0) {
      throw new AppError('backup_schema_mismatch', `the backup has tables the rebuilt schema lacks (${missing.map((t) => `${t.schema}.${t.name}`).join(', ')}): it was not taken by this Wombat's migrations`);
    }
    // Foreign keys between the tables: dropped for the copy (any order, self references),
    // added back afterwards, which validates every row against them.
    const fks = await tx<{ tbl: string; name: string; def: string }[]>`
      select format('%I.%I', n.nspname, c.relname) as tbl, k.conname as name, pg_get_constraintdef(k.oid) as def
      from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
      where k.contype = 'f' and n.nspname in ${tx([...WOMBAT_SCHEMAS])} and not c.relispartition`;
    for (const fk of fks) await tx.unsafe(`alter table ${fk.tbl} drop constraint ${quoteIdent(fk.name)}`);
    for (const t of restored) await tx.unsafe(`alter table ${tableRef(t)} disable trigger user`);
    if (restored.length > 0) await tx.unsafe(`truncate ${restored.map(tableRef).join(', ')}`);
    for await (const { table, data } of tables) {
      if (skip.has(`${table.schema}.${table.name}`)) continue;
      const started = performance.now();
      const into = await tx.unsafe(`copy ${tableRef(table)} (${table.columns.map(quoteIdent).join(', ')}) from stdin`).writable();
      await pipeline(Readable.from(data), into);
      log.debug({ table: `${table.schema}.${table.name}`, rows: table.rows, ms: Math.round(performance.now() - started) }, 'table restored');
    }
    for (const t of restored) await tx.unsafe(`alter table ${tableRef(t)} enable trigger user`);
    for (const fk of fks) await tx.unsafe(`alter table ${fk.tbl} add constraint ${quoteIdent(fk.name)} ${fk.def}`);
    for (const s of header.sequences) {
      if (!existing.has(`${s.schema}.${s.name}`) && !(await sequenceExists(tx, s))) continue;
      await tx`select setval(${tableRef(s)}::regclass, ${s.lastValue}, ${s.isCalled})`;
    }
  });
}

/**
 * Brings a restored database to this Wombat's schema and queues. A backup of this version needs
 * nothing, and its queues stay as restored (migrating rewrites every queue's settings), unless it
 * lacks a queue this Wombat has.
 */
export async function migrateForward(url: string, log: Logger): Promise<string[]> {
  const latest = (await readMigrations(await workspaceMigrations())).at(-1)!.version;
  const sql = createSql({ url, poolSize: 1, applicationName: 'wombat-restore' });
  let needed: boolean;
  try {
    const [m] = await sql<{ v: number | null }[]>`select max(version) as v from wombat.schema_migrations`;
    const have = new Set((await sql<{ name: string }[]>`select name from pgboss.queue`).map((r) => r.name));
    needed = (m?.v ?? 0) < latest || JOB_TYPES.some((j) => !have.has(j));
  } finally {
    await sql.end({ timeout: 5 });
  }
  return needed ? (await migrateAll({ url, log })).applied : [];
}

async function sequenceExists(tx: Tx, s: { schema: string; name: string }): Promise<boolean> {
  const [r] = await tx<{ ok: boolean }[]>`select to_regclass(${tableRef(s)}) is not null as ok`;
  return r!.ok;
}

/** Every table of Wombat's schemas with its rows, as they are now in the database at `url`. */
export async function countRows(url: string): Promise<{ schema: string; name: string; rows: number }[]> {
  const sql = createSql({ url, poolSize: 1, applicationName: 'wombat-restore', statementTimeoutMs: 0 });
  try {
    const tables = await sql<{ schema: string; name: string }[]>`
      select n.nspname as schema, c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname in ${sql([...WOMBAT_SCHEMAS])} and c.relkind in ('r', 'p') and not c.relispartition
      order by n.nspname desc, c.relname`;
    const out: { schema: string; name: string; rows: number }[] = [];
    for (const t of tables) {
      const [r] = await sql.unsafe<{ n: number }[]>(`select count(*) as n from ${tableRef(t)}`);
      out.push({ ...t, rows: Number(r!.n) });
    }
    return out;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
