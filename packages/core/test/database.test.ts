import t, { type Test } from 'tap';
import { createSql, migrateWombat, readMigrations, repoRoot, startBoss, workspaceMigrations } from '@wombat/core/platform';
import { JOB_TYPES } from '@wombat/core/jobs';
import { publishRun } from '@wombat/core/runs';
import { createEmptyTestDatabase, createTestDatabase, testLogger } from '@wombat/core/testing';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';

const named = (m: { version: number; name: string }) => `${String(m.version).padStart(4, '0')}_${m.name}`;

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-mig-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('migrates a fresh database into schema wombat, every package\'s migrations in one order, and again is a no-op', async (t) => {
  const { url } = await createEmptyTestDatabase(t);
  const sql = createSql({ url, poolSize: 2 });
  t.teardown(() => sql.end());
  const log = testLogger();
  const dirs = await workspaceMigrations();
  t.same(
    dirs.map((d) => path.relative(repoRoot, d)),
    ['packages/core/src/runs/migrations', 'packages/core/src/workers/migrations', 'packages/core/src/schedules/migrations', 'packages/core/src/alerts/migrations', 'packages/collectors/src/migrations'],
    'each package names the folders of the tables it owns',
  );
  const first = await migrateWombat(sql, log, dirs);
  t.same(first.applied, (await readMigrations(dirs)).map(named));
  t.same(first.applied.slice(0, 4), ['0001_core', '0002_scheduler', '0003_collectors', '0004_api'], 'numbered across the folders, applied in that order');
  const second = await migrateWombat(sql, log, dirs);
  t.same(second.applied, []);
  const [row] = await sql`select count(*)::int as n from information_schema.tables where table_schema = 'wombat' and table_name in ('runs', 'candles')`;
  t.equal(row!.n, 2, 'core\'s tables and the collectors\'');
});

t.test('two processes migrating at once apply each migration once', async (t) => {
  const { url } = await createEmptyTestDatabase(t);
  const a = createSql({ url, poolSize: 1 });
  const b = createSql({ url, poolSize: 1 });
  t.teardown(async () => {
    await a.end();
    await b.end();
  });
  const dirs = await workspaceMigrations();
  const [ra, rb] = await Promise.all([migrateWombat(a, testLogger(), dirs), migrateWombat(b, testLogger(), dirs)]);
  const total = ra.applied.length + rb.applied.length;
  t.equal(total, (await readMigrations(dirs)).length);
});

t.test('refuses a migration edited after it was applied', async (t) => {
  const { url } = await createEmptyTestDatabase(t);
  const sql = createSql({ url, poolSize: 1 });
  t.teardown(() => sql.end());
  const root = await tempDir(t);
  const dirs: string[] = [];
  for (const [i, dir] of (await workspaceMigrations()).entries()) {
    dirs.push(path.join(root, String(i)));
    await cp(dir, dirs.at(-1)!, { recursive: true });
  }
  await migrateWombat(sql, testLogger(), dirs);
  await writeFile(path.join(dirs[0]!, '0001_core.sql'), '-- edited\n', { flag: 'a' });
  await t.rejects(migrateWombat(sql, testLogger(), dirs), { code: 'migration_changed', message: /0001_core\.sql was changed after it was applied/ });
});

t.test('refuses holes and repeats in the numbering across folders, and a pending migration older than an applied one', async (t) => {
  const { url } = await createEmptyTestDatabase(t);
  const sql = createSql({ url, poolSize: 1 });
  t.teardown(() => sql.end());
  const root = await tempDir(t);
  const [one, two] = [path.join(root, 'one'), path.join(root, 'two')];
  await mkdir(one);
  await mkdir(two);
  await writeFile(path.join(one, '0001_a.sql'), 'create table if not exists wombat.mig_a (x int);\n');
  await writeFile(path.join(two, '0003_c.sql'), 'create table if not exists wombat.mig_c (x int);\n');
  await t.rejects(migrateWombat(sql, testLogger(), [one, two]), { code: 'migration_gap', message: /two\/0003_c\.sql should be numbered 0002/ });
  await writeFile(path.join(two, '0001_x.sql'), 'select 1;\n');
  await t.rejects(migrateWombat(sql, testLogger(), [one, two]), { code: 'duplicate_migration', message: /one\/0001_a\.sql and .*two\/0001_x\.sql share number 0001/ });
  await rm(path.join(two, '0001_x.sql'));
  await t.rejects(migrateWombat(sql, testLogger(), [one, path.join(root, 'three')]), { code: 'migration_folder_missing', message: /three/ });
  await t.rejects(migrateWombat(sql, testLogger(), []), { code: 'no_migrations' });
  t.equal((await sql`select to_regclass('wombat.mig_a') as t`)[0]!.t, null, 'nothing was applied from a refused set');

  // A database that has 0001 and 0003 applied (made by hand here) must not get 0002 afterwards.
  const c = 'create table if not exists wombat.mig_c (x int);\n';
  await rm(path.join(two, '0003_c.sql'));
  await migrateWombat(sql, testLogger(), [one, two]);
  await sql`insert into wombat.schema_migrations (version, name, checksum) values (3, 'c', ${createHash('sha256').update(c).digest('hex')})`;
  await writeFile(path.join(two, '0002_b.sql'), 'create table if not exists wombat.mig_b (x int);\n');
  await writeFile(path.join(one, '0003_c.sql'), c);
  await t.rejects(migrateWombat(sql, testLogger(), [one, two]), { code: 'migration_out_of_order', message: /0002_b is pending but 0003 is already applied/ });
});

t.test('a database that recorded 0005_api before the renumbering keeps it as 0004_api', async (t) => {
  const { url } = await createEmptyTestDatabase(t);
  const sql = createSql({ url, poolSize: 1 });
  t.teardown(() => sql.end());
  // The database as it was before the renumbering: migrations up to api, recorded as 0005.
  const dirs = await workspaceMigrations();
  const all = await readMigrations(dirs);
  const dir = await tempDir(t);
  for (const m of all.filter((m) => m.version <= 4)) await writeFile(path.join(dir, `${named(m)}.sql`), m.sql);
  await migrateWombat(sql, testLogger(), [dir]);
  await sql`update wombat.schema_migrations set version = 5 where version = 4 and name = 'api'`;
  const again = await migrateWombat(sql, testLogger(), dirs);
  t.same(again.applied, all.filter((m) => m.version > 4).map(named), 'api is not applied twice; later migrations are');
  const versions = (await sql<{ version: number }[]>`select version from wombat.schema_migrations order by version`).map((r) => r.version);
  t.same(versions, all.map((m) => m.version));
});

t.test('publishRun records the run and its pg-boss job under one id', async (t) => {
  const tdb = await createTestDatabase(t);
  const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log });
  t.teardown(() => boss.stop({ graceful: false, close: true }));
  const queues = (await boss.getQueues()).map((q) => q.name).sort();
  t.same(queues, [...JOB_TYPES].sort(), 'migrator created every queue');

  const id = await publishRun(tdb.db, boss, { job: 'canary', params: {}, trigger: 'manual' });
  const run = await tdb.db.selectFrom('wombat.runs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  t.equal(run.state, 'queued');
  t.equal(run.trigger, 'manual');
  t.ok(run.published_at instanceof Date);
  const job = await boss.getJobById('canary', id);
  t.equal(job?.id, id);

  // A failure after the send rolls back both the run and the job.
  await t.rejects(
    tdb.db.transaction().execute(async (trx) => {
      const { insertRunAndSend } = await import('@wombat/core/runs');
      await insertRunAndSend(trx, boss, { job: 'canary', params: {}, trigger: 'manual', id: '00000000-0000-4000-8000-000000000001' });
      throw new Error('abort');
    }),
  );
  t.equal(await boss.getJobById('canary', '00000000-0000-4000-8000-000000000001'), null);
  const orphan = await tdb.db.selectFrom('wombat.runs').select('id').where('id', '=', '00000000-0000-4000-8000-000000000001').execute();
  t.same(orphan, []);
});
