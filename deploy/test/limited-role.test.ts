/**
 * A managed database's role: the test database is owned by a login role of its own,
 * with no superuser, CREATEDB or CREATEROLE (packages/core/src/testing.ts), as a
 * managed PostgreSQL gives. Migrations (Wombat's and pg-boss's schema), the three
 * services and a backup with pg_dump all work as that role; what it may not do is
 * checked too, so the test would notice a more generous role.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { migrateAll } from '@wombat/core/setup';
import { createTestDatabase } from '@wombat/core/testing';
import { post, startStack } from '../outage-harness.ts';

t.test('Wombat as the owner of its database only', async (t) => {
  const tdb = await createTestDatabase(t);
  const [role] = await tdb.sql<{ rolname: string; rolsuper: boolean; rolcreatedb: boolean; rolcreaterole: boolean; owns: boolean }[]>`
    select r.rolname, r.rolsuper, r.rolcreatedb, r.rolcreaterole,
           (select d.datdba = r.oid from pg_database d where d.datname = current_database()) as owns
    from pg_roles r where r.rolname = current_user`;
  t.match(role, { rolsuper: false, rolcreatedb: false, rolcreaterole: false, owns: true }, 'a plain role that owns the database');

  await t.test('what a managed database refuses, this role is refused too', async (t) => {
    for (const statement of ['alter system set work_mem = \'8MB\'', 'create role wombat_other', 'create database wombat_other', 'create extension if not exists file_fdw']) {
      const err = await tdb.sql.unsafe(statement).then(() => undefined, (e: { code?: string }) => e);
      t.ok(err, `refused: ${statement}`);
    }
  });

  await t.test('migrations run, and run again, as the role; every schema is its own', async (t) => {
    await migrateAll({ url: tdb.url, log: tdb.log });
    const schemas = await tdb.sql<{ nspname: string; owner: string }[]>`
      select n.nspname, pg_get_userbyid(n.nspowner) as owner from pg_namespace n where n.nspname in ('wombat', 'pgboss') order by 1`;
    t.same(schemas.map((s) => [s.nspname, s.owner]), [['pgboss', role!.rolname], ['wombat', role!.rolname]]);
  });

  await t.test('the api, the engine and a worker run a task as the role', async (t) => {
    const dataRoot = mkdtempSync(path.join(tmpdir(), 'wombat-role-'));
    t.teardown(() => rmSync(dataRoot, { recursive: true, force: true }));
    const stack = await startStack({ databaseUrl: tdb.url, dataRoot, teardown: t.teardown.bind(t) });
    const a = await post(stack.apiUrl, '/api/tasks/canary', {}, 5000);
    t.equal(a.status, 202, 'a task is accepted');
    let state = '';
    const until = Date.now() + 20_000;
    while (Date.now() < until) {
      // The worker's attempt updates go through wombat.apply_attempt_updates, which reads pgboss.job.
      const [run] = await tdb.sql<{ state: string }[]>`select state from wombat.runs where id = ${a.taskId!}`;
      state = run?.state ?? '';
      if (state === 'completed') break;
      await sleep(100);
    }
    t.equal(state, 'completed', 'the task ran to completion');
    t.same(stack.all.flatMap((p) => p.fatalLines()), [], 'nothing fatal');
  });

  await t.test('pg_dump backs the database up as the role', async (t) => {
    const [server] = await tdb.sql<{ v: number }[]>`select current_setting('server_version_num')::int / 10000 as v`;
    const bin = [17, 16, 15].filter((v) => v >= server!.v).map((v) => `/usr/lib/postgresql/${v}/bin/pg_dump`).find((p) => existsSync(p));
    if (!bin) {
      t.plan(0, `no pg_dump of version ${server!.v} or later here`);
      return;
    }
    const r = spawnSync(bin, ['--schema-only', '--dbname', tdb.url], { encoding: 'utf8', timeout: 60_000 });
    t.equal(r.status, 0, 'pg_dump exits 0', { stderr: r.stderr });
    t.match(r.stdout, /CREATE TABLE wombat\.runs/, 'Wombat\'s tables are in the dump');
    t.match(r.stdout, /CREATE TABLE pgboss\.job/, 'pg-boss\'s too');
  });
});
