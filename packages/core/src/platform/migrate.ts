import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from './errors.ts';
import type { Sql } from './db.ts';
import type { Logger } from './logger.ts';
import { repoRoot } from './paths.ts';

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
  /** Its path, relative to the checkout when inside it: for messages. */
  file: string;
}

const numbered = (version: number) => String(version).padStart(4, '0');
const shown = (p: string) => (p.startsWith(repoRoot + path.sep) ? path.relative(repoRoot, p) : p);

/**
 * The migration folders of this checkout. The runner knows no domain: each workspace
 * package lists the folders of the tables it owns in its package.json, as
 * `"wombat": { "migrations": ["src/runs/migrations", ...] }` (paths relative to the
 * package), and whoever migrates (migrateAll: deploy/migrate.ts, npm start, the test
 * databases) reads that list here and passes it on.
 */
export async function workspaceMigrations(root = repoRoot): Promise<string[]> {
  const manifest = async (dir: string) => JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as { workspaces?: unknown; wombat?: { migrations?: unknown } };
  const { workspaces } = await manifest(root);
  if (!Array.isArray(workspaces) || workspaces.some((w) => typeof w !== 'string' || w.includes('*'))) {
    throw new AppError('bad_migration_manifest', `${path.join(root, 'package.json')} must name each workspace by its path (no patterns) for its migrations to be found`);
  }
  const dirs: string[] = [];
  for (const workspace of workspaces as string[]) {
    const migrations = (await manifest(path.join(root, workspace))).wombat?.migrations;
    if (migrations === undefined) continue;
    if (!Array.isArray(migrations) || migrations.some((m) => typeof m !== 'string')) {
      throw new AppError('bad_migration_manifest', `${workspace}/package.json: "wombat.migrations" must be a list of folders, relative to the package`);
    }
    for (const dir of migrations as string[]) dirs.push(path.join(root, workspace, dir));
  }
  return dirs;
}

async function readFolder(dir: string): Promise<MigrationFile[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((f) => f.endsWith('.sql'));
  } catch (err) {
    throw new AppError('migration_folder_missing', `cannot read the migration folder ${shown(dir)}: ${(err as Error).message}`, { cause: err });
  }
  const out: MigrationFile[] = [];
  for (const name of names) {
    const file = shown(path.join(dir, name));
    const match = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(name);
    if (!match) throw new AppError('bad_migration_name', `migration file ${file} must be named NNNN_name.sql`);
    const text = await readFile(path.join(dir, name), 'utf8');
    out.push({ version: Number(match[1]), name: match[2]!, sql: text, checksum: createHash('sha256').update(text).digest('hex'), file });
  }
  return out;
}

/**
 * The migrations of every folder given, in one order: one numbering runs across all
 * folders (whichever package owns the tables), each number once, without holes.
 */
export async function readMigrations(dirs: readonly string[]): Promise<MigrationFile[]> {
  if (dirs.length === 0) throw new AppError('no_migrations', 'no migration folders given: pass the folders of every package (workspaceMigrations())');
  const all = (await Promise.all(dirs.map(readFolder))).flat().sort((a, b) => a.version - b.version);
  all.forEach((m, i) => {
    const prior = all[i - 1];
    if (prior?.version === m.version) {
      throw new AppError('duplicate_migration', `migrations ${prior.file} and ${m.file} share number ${numbered(m.version)}: one numbering runs across every package's folder`);
    }
    if (m.version !== i + 1) {
      throw new AppError('migration_gap', `migration ${m.file} should be numbered ${numbered(i + 1)}: migrations are numbered 0001, 0002, ... without holes, across every package's folder`);
    }
  });
  return all;
}

/**
 * Applies the pending migrations of `dirs` (every package's folders: see
 * workspaceMigrations), forward only, in one transaction under an advisory lock so
 * that processes starting together never race. A landed migration whose
 * file changed afterwards is refused: migrations are frozen once applied. `upTo`: stop
 * after that version (a restore rebuilds the schema a backup was taken with).
 */
export async function migrateWombat(sql: Sql, log: Logger, dirs: readonly string[], opts: { upTo?: number } = {}): Promise<{ applied: string[] }> {
  const known = await readMigrations(dirs);
  const migrations = opts.upTo === undefined ? known : known.filter((m) => m.version <= opts.upTo!);
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
            `migration ${m.file} was changed after it was applied; add a new migration instead`,
          );
        }
        continue;
      }
      if (m.version < newestApplied) {
        // Applying an older migration after a newer one would give this database a
        // schema no fresh install has: refuse rather than guess.
        throw new AppError(
          'migration_out_of_order',
          `migration ${numbered(m.version)}_${m.name} is pending but ${numbered(newestApplied)} is already applied; ` +
            'migrations must be applied in order: restore the database from before the newer migration or ask for a fixed release',
        );
      }
      await tx.unsafe(m.sql);
      await tx`insert into wombat.schema_migrations (version, name, checksum) values (${m.version}, ${m.name}, ${m.checksum})`;
      applied.push(`${numbered(m.version)}_${m.name}`);
    }
    const knownVersions = new Set(known.map((m) => m.version));
    const unknown = [...done.keys()].filter((v) => !knownVersions.has(v));
    if (unknown.length > 0) {
      throw new AppError('database_ahead', `the database has migrations ${unknown.join(', ')} this version of Wombat does not know; deploy a newer version`);
    }
  });
  if (applied.length > 0) log.info({ applied }, 'migrations applied');
  else log.debug('database schema up to date');
  return { applied };
}
