/**
 * The README's restore procedure ("Backups and restore"), run as written with sh in a checkout,
 * after a `wombat backup now`: only the restore URL becomes an empty test database.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { repoRoot } from '@wombat/core/platform';
import { childEnv, createEmptyTestDatabase, createTestDatabase } from '@wombat/core/testing';
import { readmeBlock } from './helpers.ts';

t.setTimeout(300_000);

t.test('the restore procedure of the README restores the newest backup', async (t) => {
  const source = await createTestDatabase(t);
  await source.sql`insert into wombat.schedules (name, job, kind, times, timezone) values ('readme', 'canary', 'times', '{09:00}', 'UTC')`;
  const target = await createEmptyTestDatabase(t);
  const backupDir = mkdtempSync(path.join(tmpdir(), 'wombat-readme-backup-'));
  t.teardown(() => rmSync(backupDir, { recursive: true, force: true }));
  const lines = readmeBlock('## Backups and restore');
  t.ok(lines.some((l) => l.includes('wombat restore')));
  const script = ['set -eu', 'npx wombat backup now', ...lines].join('\n').replace('postgres://wombat:choose-a-secret@127.0.0.1:5432/wombat_restored', target.url);
  const run = spawnSync('sh', ['-c', script], { cwd: repoRoot, env: childEnv({ DATABASE_URL: source.url, BACKUP_DIR: backupDir, TZ: 'UTC' }), encoding: 'utf8', timeout: 240_000 });
  t.equal(run.status, 0, 'every line succeeds', { stdout: run.stdout, stderr: run.stderr });
  t.match(run.stdout, /checksum:\s+ok/);
  t.match(run.stdout, /^wombat\.schedules\s+1$/m, 'the restore prints the rows of each table');
  const sql = postgres(target.url, { max: 1, onnotice: () => {} });
  t.teardown(() => sql.end());
  t.same(await sql`select name from wombat.schedules`, [{ name: 'readme' }]);
});
