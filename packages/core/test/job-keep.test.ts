import t from 'tap';
import { spawnSync } from 'node:child_process';
import { sql } from 'kysely';
import { repoRoot, startBoss } from '@wombat/core/platform';
import { publishRuns } from '@wombat/core/runs';
import { childEnv, createTestDatabase } from '@wombat/core/testing';

/**
 * JOB_KEEP_HOURS: npm run migrate writes it into every queue, jobs sent afterwards carry it, and
 * pg-boss's maintenance deletes a finished job older than it while the runs stay in wombat.runs.
 */
const migrate = (env: Record<string, string>) =>
  spawnSync(process.execPath, ['deploy/migrate.ts'], { cwd: repoRoot, env: childEnv({ LOG_FORMAT: 'json', ...env }), encoding: 'utf8', timeout: 120_000 });

t.test('finished jobs older than JOB_KEEP_HOURS are deleted by pg-boss; their runs stay', async (t) => {
  const tdb = await createTestDatabase(t);
  const migrated = migrate({ DATABASE_URL: tdb.url, JOB_KEEP_HOURS: '2' });
  t.equal(migrated.status, 0, migrated.stderr + migrated.stdout);
  const queues = await sql<{ name: string; deletion_seconds: number }>`select name, deletion_seconds from pgboss.queue`.execute(tdb.db);
  t.ok(queues.rows.length > 5);
  t.ok(queues.rows.every((q) => q.deletion_seconds === 7200), 'every queue keeps finished jobs 2 hours');

  const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 2 });
  t.teardown(() => boss.stop({ graceful: false, close: true }));
  const [old, recent, waiting] = await publishRuns(tdb.db, boss, [0, 1, 2].map(() => ({ job: 'canary' as const, params: {}, trigger: 'task' as const })));
  const sent = await sql<{ id: string; deletion_seconds: number }>`select id, deletion_seconds from pgboss.job where name = 'canary'`.execute(tdb.db);
  t.same(sent.rows.map((j) => j.deletion_seconds), [7200, 7200, 7200], 'jobs carry the setting');
  await sql`update pgboss.job set state = 'completed', completed_on = now() - interval '3 hours' where id = ${old!}`.execute(tdb.db);
  await sql`update pgboss.job set state = 'completed', completed_on = now() - interval '1 hour' where id = ${recent!}`.execute(tdb.db);
  await boss.supervise('canary');
  const left = await sql<{ id: string }>`select id from pgboss.job where name = 'canary' order by id`.execute(tdb.db);
  t.same(left.rows.map((j) => j.id).sort(), [recent!, waiting!].sort(), 'the job finished 3 hours ago is gone, the others stay');
  const runs = await sql<{ n: number }>`select count(*)::int as n from wombat.runs where id = any(${[old!, recent!, waiting!]}::uuid[])`.execute(tdb.db);
  t.equal(runs.rows[0]!.n, 3, 'every run stays');
});

t.test('npm run migrate refuses a JOB_KEEP_HOURS out of range, naming it', async (t) => {
  const res = migrate({ DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', JOB_KEEP_HOURS: '0' });
  t.equal(res.status, 1);
  t.match(res.stderr, /JOB_KEEP_HOURS/);
});
