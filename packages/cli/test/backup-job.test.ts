import t from 'tap';
import { existsSync } from 'node:fs';
import postgres from 'postgres';
import { startPrivatePostgres } from '@wombat/core/testing';
import { startWorker, tempDir, wombat } from './helpers.ts';

/**
 * The database-backup job on the embedded PostgreSQL, which ships no pg_dump: `auto` takes
 * Wombat's own format (a pg_dump on the PATH is older than the embedded server, or absent),
 * and the run records what it wrote.
 */
t.setTimeout(300_000);
const pg = await startPrivatePostgres(t);
const backupDir = await tempDir(t);
const env = { DATABASE_URL: pg.url, TZ: 'UTC', BACKUP_DIR: backupDir };

t.test('the job backs the embedded server up in Wombat\'s format and records the file in its run', async (t) => {
  await startWorker(t, { ...env, WORKER_QUEUES: 'database-backup' });
  const ran = await wombat(['trigger', 'database-backup', '--job', '--wait', '--json'], env);
  t.equal(ran.code, 0, ran.stderr);
  const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
  t.teardown(() => sql.end());
  const [run] = await sql<{ state: string; result: Record<string, unknown> }[]>`select state, result from wombat.runs where job = 'database-backup' order by created_at desc limit 1`;
  t.equal(run?.state, 'completed');
  t.match(run?.result, { format: 'wombat', reason: /no pg_dump on the PATH|pg_dump \d+ is older than PostgreSQL 1[7-9]/, file: String, bytes: Number, durationMs: Number, tables: Number, rows: Number });
  const file = run!.result.file as string;
  t.ok(file.startsWith(backupDir) && existsSync(file) && existsSync(`${file}.sha256`));

  const verified = await wombat(['backup', 'verify', file, '--json'], env);
  t.equal(verified.code, 0, verified.stderr);
  t.match(verified.json, { format: 'wombat', checksum: 'ok', header: { format: 'wombat', serverVersionNum: Number, tables: Array } });
  t.ok(verified.json.header.serverVersionNum >= 170000, 'taken from the embedded PostgreSQL 17');

  // Restored on the same embedded server, into a database of its own.
  const admin = new URL(pg.url);
  admin.pathname = '/postgres';
  const adminSql = postgres(admin.toString(), { max: 1, onnotice: () => {} });
  t.teardown(() => adminSql.end());
  await adminSql`create database restored`;
  const into = new URL(pg.url);
  into.pathname = '/restored';
  const restored = await wombat(['restore', file, '--into', into.toString()], {});
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /^wombat\.runs\s+\d+$/m);
});

t.test('wombat run database-backup takes one in the operator\'s process, recorded with trigger cli', async (t) => {
  const ran = await wombat(['run', 'database-backup', '--json'], env);
  t.equal(ran.code, 0, ran.stderr);
  t.match(ran.json, { job: 'database-backup', state: 'completed', result: { format: 'wombat', file: String } });
  const listed = await wombat(['backup', 'list', '--json'], env);
  t.ok(listed.json.backups.length >= 1 && listed.json.backups.every((b: { checksum: string }) => b.checksum === 'ok'));
});
