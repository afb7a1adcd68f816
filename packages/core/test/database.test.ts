import t from 'tap';
import { createSql, migrateWombat, publishRun, readMigrations, startBoss, JOB_TYPES } from '@wombat/core';
import { createEmptyTestDatabase, createTestDatabase, testLogger } from '@wombat/core/testing';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';

t.test('migrates a fresh database into schema wombat, and again is a no-op', async (t) => {
  const { url } = await createEmptyTestDatabase(t);
  const sql = createSql({ url, poolSize: 2 });
  t.teardown(() => sql.end());
  const log = testLogger();
  const first = await migrateWombat(sql, log);
  t.same(first.applied, (await readMigrations()).map((m) => `${String(m.version).padStart(4, '0')}_${m.name}`));
  const second = await migrateWombat(sql, log);
  t.same(second.applied, []);
  const [row] = await sql`select count(*)::int as n from information_schema.tables where table_schema = 'wombat' and table_name = 'runs'`;
  t.equal(row!.n, 1);
});

t.test('two processes migrating at once apply each migration once', async (t) => {
  const { url } = await createEmptyTestDatabase(t);
  const a = createSql({ url, poolSize: 1 });
  const b = createSql({ url, poolSize: 1 });
  t.teardown(async () => {
    await a.end();
    await b.end();
  });
  const [ra, rb] = await Promise.all([migrateWombat(a, testLogger()), migrateWombat(b, testLogger())]);
  const total = ra.applied.length + rb.applied.length;
  t.equal(total, (await readMigrations()).length);
});

t.test('refuses a migration edited after it was applied', async (t) => {
  const { url } = await createEmptyTestDatabase(t);
  const sql = createSql({ url, poolSize: 1 });
  t.teardown(() => sql.end());
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-mig-'));
  await cp(path.resolve(import.meta.dirname, '../migrations'), dir, { recursive: true });
  await migrateWombat(sql, testLogger(), dir);
  await writeFile(path.join(dir, '0001_core.sql'), '-- edited\n', { flag: 'a' });
  await t.rejects(migrateWombat(sql, testLogger(), dir), { code: 'migration_changed' });
});

t.test('refuses holes in the numbering and a pending migration older than an applied one', async (t) => {
  const { url } = await createEmptyTestDatabase(t);
  const sql = createSql({ url, poolSize: 1 });
  t.teardown(() => sql.end());
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-mig-'));
  await writeFile(path.join(dir, '0001_a.sql'), 'create table if not exists wombat.mig_a (x int);\n');
  await writeFile(path.join(dir, '0003_c.sql'), 'create table if not exists wombat.mig_c (x int);\n');
  await t.rejects(migrateWombat(sql, testLogger(), dir), { code: 'migration_gap', message: /0003_c\.sql should be numbered 0002/ });

  // A database that has 0001 and 0003 applied (made by hand here) must not get 0002 afterwards.
  const c = 'create table if not exists wombat.mig_c (x int);\n';
  await rm(path.join(dir, '0003_c.sql'));
  await migrateWombat(sql, testLogger(), dir);
  await sql`insert into wombat.schema_migrations (version, name, checksum) values (3, 'c', ${createHash('sha256').update(c).digest('hex')})`;
  await writeFile(path.join(dir, '0002_b.sql'), 'create table if not exists wombat.mig_b (x int);\n');
  await writeFile(path.join(dir, '0003_c.sql'), c);
  await t.rejects(migrateWombat(sql, testLogger(), dir), { code: 'migration_out_of_order', message: /0002_b is pending but 0003 is already applied/ });
});

t.test('a database that recorded 0005_api before the renumbering keeps it as 0004_api', async (t) => {
  const { url } = await createEmptyTestDatabase(t);
  const sql = createSql({ url, poolSize: 1 });
  t.teardown(() => sql.end());
  // The database as it was before the renumbering: migrations up to api, recorded as 0005.
  const all = await readMigrations();
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-mig-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const m of all.filter((m) => m.version <= 4)) await writeFile(path.join(dir, `${String(m.version).padStart(4, '0')}_${m.name}.sql`), m.sql);
  await migrateWombat(sql, testLogger(), dir);
  await sql`update wombat.schema_migrations set version = 5 where version = 4 and name = 'api'`;
  const again = await migrateWombat(sql, testLogger());
  t.same(again.applied, all.filter((m) => m.version > 4).map((m) => `${String(m.version).padStart(4, '0')}_${m.name}`), 'api is not applied twice; later migrations are');
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
      const { insertRunAndSend } = await import('@wombat/core');
      await insertRunAndSend(trx, boss, { job: 'canary', params: {}, trigger: 'manual', id: '00000000-0000-4000-8000-000000000001' });
      throw new Error('abort');
    }),
  );
  t.equal(await boss.getJobById('canary', '00000000-0000-4000-8000-000000000001'), null);
  const orphan = await tdb.db.selectFrom('wombat.runs').select('id').where('id', '=', '00000000-0000-4000-8000-000000000001').execute();
  t.same(orphan, []);
});
