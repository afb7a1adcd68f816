import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { repoRoot, startBoss } from '@wombat/core/platform';
import { migrateAll } from '@wombat/core/setup';
import { testAdminUrl, testLogger } from '@wombat/core/testing';

/**
 * The README's statements for a production PostgreSQL (the ```sql block of "Production
 * with systemd"), run as the test server's superuser with names of this test's own,
 * then Wombat's migrations and pg-boss's schema as the new role, which is no superuser.
 */
const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
const block = /```sql\n([^]*?)```/.exec(readme.slice(readme.indexOf('## Production with systemd')))?.[1] ?? '';

t.test('the role and database the README makes are enough for the migrations', async (t) => {
  const statements = block.split(';').map((s) => s.trim()).filter(Boolean);
  t.equal(statements.length, 2, 'a role and a database');
  const name = `wombat_role_${randomBytes(4).toString('hex')}`;
  const admin = postgres(testAdminUrl(), { max: 1, onnotice: () => {} });
  t.teardown(async () => {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.unsafe(`drop role if exists "${name}"`);
    await admin.end();
  });
  for (const statement of statements) await admin.unsafe(statement.replace(/\bwombat\b/g, name).replace('choose-a-secret', 'role-test-secret'));

  const url = new URL(testAdminUrl());
  url.username = name;
  url.password = 'role-test-secret';
  url.pathname = `/${name}`;
  const [role] = await admin<{ rolsuper: boolean }[]>`select rolsuper from pg_roles where rolname = ${name}`;
  t.equal(role?.rolsuper, false, 'not a superuser');
  const { applied } = await migrateAll({ url: url.toString(), log: testLogger() });
  t.ok(applied.length > 0, 'the migrations ran as the role');
  const boss = await startBoss({ url: url.toString(), role: 'producer', log: testLogger(), poolSize: 1 });
  await boss.stop({ graceful: false, close: true });
  const [owner] = await admin<{ owner: string }[]>`select pg_get_userbyid(datdba) as owner from pg_database where datname = ${name}`;
  t.equal(owner?.owner, name);
});
