/**
 * Migrations live beside the tables' owners: core's domains (src/<domain>/migrations)
 * and the collectors (packages/collectors/src/migrations), each package listing its
 * folders in its package.json. Databases migrated while every migration sat in
 * packages/core/migrations (the layout of commit 1942e70) must take the new layout
 * applying only the migrations written since, and keep the schema a fresh database gets.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createSql, migrateWombat, readMigrations, repoRoot, workspaceMigrations, type Sql } from '@wombat/core/platform';
import { createEmptyTestDatabase, testLogger } from '@wombat/core/testing';

/** The last commit with every migration in packages/core/migrations. */
const ONE_FOLDER_LAYOUT = '1942e70';

function git(...args: string[]): string {
  return execFileSync('git', ['-C', repoRoot, ...args], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
}

/** The migration files as they were at ONE_FOLDER_LAYOUT, read from git. */
function oneFolderMigrations(): { file: string; sql: string }[] {
  let files: string[];
  try {
    files = git('ls-tree', '--name-only', `${ONE_FOLDER_LAYOUT}:packages/core/migrations`).split('\n').filter(Boolean);
  } catch (err) {
    throw new Error(`this test reads the migrations of commit ${ONE_FOLDER_LAYOUT} from git: run it in a clone that has that commit (git fetch --unshallow)`, { cause: err });
  }
  return files.map((file) => ({ file, sql: git('show', `${ONE_FOLDER_LAYOUT}:packages/core/migrations/${file}`) }));
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-mig-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function migratedDatabase(t: Test, dirs: string[]): Promise<{ sql: Sql; applied: string[] }> {
  const { url } = await createEmptyTestDatabase(t);
  const sql = createSql({ url, poolSize: 1 });
  t.teardown(() => sql.end());
  const { applied } = await migrateWombat(sql, testLogger(), dirs);
  return { sql, applied };
}

/** Everything migrations make in schema wombat, as the catalogue describes it. */
async function schemaOf(sql: Sql) {
  const rows = async (q: Promise<object[]>) => (await q).map((r) => ({ ...r }));
  return {
    columns: await rows(sql`
      select table_name, column_name, ordinal_position, data_type, udt_name, column_default, is_nullable, is_identity, identity_generation
      from information_schema.columns where table_schema = 'wombat' order by table_name, ordinal_position`),
    constraints: await rows(sql`
      select c.conrelid::regclass::text as relation, c.conname, c.contype, pg_get_constraintdef(c.oid) as definition
      from pg_constraint c join pg_namespace n on n.oid = c.connamespace where n.nspname = 'wombat' order by 1, 2`),
    indexes: await rows(sql`select tablename, indexname, indexdef from pg_indexes where schemaname = 'wombat' order by indexname`),
    functions: await rows(sql`
      select p.proname, pg_get_function_identity_arguments(p.oid) as arguments, pg_get_functiondef(p.oid) as definition
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'wombat' order by 1, 2`),
    triggers: await rows(sql`
      select c.relname, tg.tgname, pg_get_triggerdef(tg.oid) as definition
      from pg_trigger tg join pg_class c on c.oid = tg.tgrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'wombat' and not tg.tgisinternal order by 1, 2`),
    views: await rows(sql`select viewname, definition from pg_views where schemaname = 'wombat' order by 1`),
    migrations: await rows(sql`select version, name, checksum from wombat.schema_migrations order by version`),
  };
}

t.test('a database migrated from the one-folder layout applies nothing with the per-package folders and keeps its schema', async (t) => {
  const oldFiles = oneFolderMigrations();
  t.ok(oldFiles.length >= 10, `commit ${ONE_FOLDER_LAYOUT} has its migrations`);
  const oldDir = await tempDir(t);
  for (const f of oldFiles) await writeFile(path.join(oldDir, f.file), f.sql);
  const dirs = await workspaceMigrations();

  // Migrations numbered after the old layout's last were written in the new one: they are
  // what the new layout applies to an old database, and then both schemas agree.
  const all = await readMigrations(dirs);
  const moved = all.slice(0, oldFiles.length);
  const added = all.slice(oldFiles.length).map((m) => path.basename(m.file, '.sql'));
  t.same(
    moved.map((m) => `${path.basename(m.file)} ${m.checksum}`),
    (await readMigrations([oldDir])).map((m) => `${path.basename(m.file)} ${m.checksum}`),
    'every migration moved unchanged, byte for byte, under its number and name',
  );

  const old = await migratedDatabase(t, [oldDir]);
  t.equal(old.applied.length, oldFiles.length, 'the old layout migrated the database');
  const again = await migrateWombat(old.sql, testLogger(), dirs);
  t.same(again.applied, added, 'the new layout applies only the migrations written since');

  const fresh = await migratedDatabase(t, dirs);
  t.equal(fresh.applied.length, all.length);
  const oldSchema = await schemaOf(old.sql);
  t.ok(oldSchema.columns.length > 100 && oldSchema.functions.length > 5 && oldSchema.triggers.length > 5, 'the comparison covers the whole schema');
  t.same(oldSchema, await schemaOf(fresh.sql), 'the same tables, columns, constraints, indexes, functions, triggers, views and recorded migrations');
});

t.test('finds the folders each workspace package names, and says what is wrong with a manifest', async (t) => {
  const root = await tempDir(t);
  const manifest = (dir: string, content: object) => writeFile(path.join(root, dir, 'package.json'), JSON.stringify(content));
  await mkdir(path.join(root, 'a'));
  await mkdir(path.join(root, 'b'));
  await manifest('.', { name: 'x', workspaces: ['a', 'b'] });
  await manifest('a', { name: 'a', wombat: { migrations: ['src/one/migrations', 'src/two/migrations'] } });
  await manifest('b', { name: 'b' });
  t.same(await workspaceMigrations(root), [path.join(root, 'a/src/one/migrations'), path.join(root, 'a/src/two/migrations')], 'a package without tables names none');

  await manifest('b', { name: 'b', wombat: { migrations: 'migrations' } });
  await t.rejects(workspaceMigrations(root), { code: 'bad_migration_manifest', message: /b\/package\.json: "wombat\.migrations" must be a list of folders/ });
  await manifest('.', { name: 'x', workspaces: ['packages/*'] });
  await t.rejects(workspaceMigrations(root), { code: 'bad_migration_manifest', message: /must name each workspace by its path/ });
});
