import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from './errors.ts';
import type { Sql } from './db.ts';
import type { Logger } from './logger.ts';
import { repoRoot } from './paths.ts';

export const migrationsDir = path.join(repoRoot, 'packages/core/migrations');

/**
 * Migrations renumbered after they had landed: a database that recorded the old
 * number (same name, same checksum) is moved to the new one before anything runs.
 * 0005_api became 0004_api to close a hole in the sequence.
 */
const RENUMBERED: readonly { from: number; to: number; name: string }[] = [{ from: 5, to: 4, name: 'api' }];

export interface MigrationFile {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export async function readMigrations(dir = migrationsDir): Promise<MigrationFile[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const out: MigrationFile[] = [];
  for (const file of files) {
    const match = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!match) throw new AppError('bad_migration_name', `migration file ${file} must be named NNNN_name.sql`);
    const text = await readFile(path.join(dir, file), 'utf8');
    const version = Number(match[1]);
    if (out.some((m) => m.version === version)) throw new AppError('duplicate_migration', `two migrations share number ${match[1]}`);
    const expected = out.length + 1;
    if (version !== expected) {
      throw new AppError('migration_gap', `migration ${file} should be numbered ${String(expected).padStart(4, '0')}: migrations are numbered 0001, 0002, ... without holes`);
    }
    out.push({ version, name: match[2]!, sql: text, checksum: createHash('sha256').update(text).digest('hex') });
  }
  return out;
}

/**
 * Applies pending migrations, forward only, in one transaction under an advisory
 * lock so that processes starting together never race. A landed migration whose
 * file changed afterwards is refused: migrations are frozen once applied.
 */
export async function migrateWombat(sql: Sql, log: Logger, dir = migrationsDir): Promise<{ applied: string[] }> {
  const migrations = await readMigrations(dir);
  const applied: string[] = [];
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext('wombat.migrate'))`;
    await tx`create schema if not exists wombat`;
    await tx`create table if not exists wombat.schema_migrations (
      version integer primary key,
      name text not null,
      checksum text not null,
      applied_at timestamptz not null default now()
    )`;
    for (const r of RENUMBERED) {
      const byName = migrations.find((m) => m.version === r.to && m.name === r.name);
      if (!byName) continue;
      await tx`update wombat.schema_migrations set version = ${r.to}
               where version = ${r.from} and name = ${r.name} and checksum = ${byName.checksum}
                 and not exists (select 1 from wombat.schema_migrations where version = ${r.to})`;
    }
    const done = new Map<number, { name: string; checksum: string }>();
    for (const row of await tx<{ version: number; name: string; checksum: string }[]>`select version, name, checksum from wombat.schema_migrations`) {
      done.set(row.version, row);
    }
    const newestApplied = Math.max(0, ...done.keys());
    for (const m of migrations) {
      const prior = done.get(m.version);
      if (prior) {
        if (prior.checksum !== m.checksum) {
          throw new AppError(
            'migration_changed',
            `migration ${String(m.version).padStart(4, '0')}_${m.name} was changed after it was applied; add a new migration instead`,
          );
        }
        continue;
      }
      if (m.version < newestApplied) {
        // Applying an older migration after a newer one would give this database a
        // schema no fresh install has: refuse rather than guess.
        throw new AppError(
          'migration_out_of_order',
          `migration ${String(m.version).padStart(4, '0')}_${m.name} is pending but ${String(newestApplied).padStart(4, '0')} is already applied; ` +
            'migrations must be applied in order: restore the database from before the newer migration or ask for a fixed release',
        );
      }
      await tx.unsafe(m.sql);
      await tx`insert into wombat.schema_migrations (version, name, checksum) values (${m.version}, ${m.name}, ${m.checksum})`;
      applied.push(`${String(m.version).padStart(4, '0')}_${m.name}`);
    }
    const known = new Set(migrations.map((m) => m.version));
    const unknown = [...done.keys()].filter((v) => !known.has(v));
    if (unknown.length > 0) {
      throw new AppError('database_ahead', `the database has migrations ${unknown.join(', ')} this version of Wombat does not know; deploy a newer version`);
    }
  });
  if (applied.length > 0) log.info({ applied }, 'migrations applied');
  else log.debug('database schema up to date');
  return { applied };
}
