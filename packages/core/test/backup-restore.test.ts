import t from 'tap';
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { backupDatabase, backupsToKeep, chooseFormat, listBackupFiles, restoreBackup, verifyBackup } from '@wombat/core/backup';
import { insertSchedule } from '@wombat/core/schedules';
import { validateScheduleInput } from '@wombat/core/schedules';
import { migrateAll } from '@wombat/core/setup';
import { createEmptyTestDatabase, createTestDatabase, tableDigests, testLogger } from '@wombat/core/testing';

/** Wombat's own backup format: written atomically with its checksum, verified, restored table for table. */
t.setTimeout(300_000);
const tdb = await createTestDatabase(t);
const log = testLogger();
const dir = await mkdtemp(path.join(tmpdir(), 'wombat-backup-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

/** Every table of Wombat's schemas as an md5 of its rows in order, and its count. */
async function digests(url: string): Promise<Record<string, string>> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await tableDigests(sql);
  } finally {
    await sql.end();
  }
}

const def = (input: object) => {
  const r = validateScheduleInput(input);
  if (!r.ok) throw new Error(r.problems.join('; '));
  return r.value;
};
await insertSchedule(tdb.db, def({ name: 'every-minute', job: 'canary', cron: '* * * * *', timezone: 'UTC' }));
await insertSchedule(tdb.db, def({ name: 'twice-a-day', job: 'canary', times: ['09:00', '18:00'], timezone: 'Europe/Berlin', params: { sleep_ms: 5 } }));
// Awkward text: tabs, newlines, backslashes, a lone "\." line, quotes and non-ASCII survive the COPY text format.
await tdb.sql`insert into wombat.runs (id, job, trigger, state, params, error)
  values (gen_random_uuid(), 'canary', 'manual', 'failed', ${tdb.sql.json({ note: 'tab\there\nnew line\n\\.\n"quoted" 한국어' })}, ${tdb.sql.json({ code: 'x', message: 'back\\slash' })})`;
await tdb.sql`insert into wombat.candles (exchange, symbol, timeframe, time, open, high, low, close, volume, quote_volume)
  select 'upbit', 'KRW-BTC', '1D', timestamptz '2026-01-01' + i * interval '1 day', 100 + i, 110 + i, 90 + i, 105 + i, 0.1 * i, 1.0 / 3 * i
  from generate_series(0, 499) i`;

t.test('a backup is one file with its checksum, verified and listed', async (t) => {
  const result = await backupDatabase({ url: tdb.url, dir, format: 'wombat', keepDaily: 7, keepWeekly: 4, log, now: () => new Date('2026-12-07T03:30:00Z') });
  t.equal(path.basename(result.file), 'wombat-20261207T033000Z.wombat.zst');
  t.equal(result.format, 'wombat');
  t.ok(result.bytes > 0);
  t.equal(result.perTable!['wombat.candles'], 500);
  t.equal(result.perTable!['wombat.schedules'], 2);
  t.ok(result.perTable!['pgboss.queue']! > 0, 'pg-boss tables are in it');
  const sum = await readFile(`${result.file}.sha256`, 'utf8');
  t.equal(sum, `${result.sha256}  wombat-20261207T033000Z.wombat.zst\n`, 'sha256sum format');
  const verified = await verifyBackup(result.file);
  t.equal(verified.checksum, 'ok');
  t.equal(verified.header!.tables.find((x) => x.name === 'candles')!.rows, 500);
  const listed = await listBackupFiles(dir, { checksums: true });
  t.match(listed, [{ name: 'wombat-20261207T033000Z.wombat.zst', format: 'wombat', checksum: 'ok' }]);
});

t.test('a restore into a new database gives every table back, row for row', async (t) => {
  const [file] = await listBackupFiles(dir);
  const target = await createEmptyTestDatabase(t);
  const restored = await restoreBackup({ file: file!.path, url: target.url, log });
  t.same(await digests(target.url), await digests(tdb.url));
  t.ok('tables' in restored && restored.tables.find((x) => x.name === 'candles')?.rows === 500);
  const sql = postgres(target.url, { max: 1, onnotice: () => {} });
  t.teardown(() => sql.end());
  // Identities carry on after the restored rows.
  const [s] = await sql<{ id: number }[]>`insert into wombat.schedules (name, job, kind, times, timezone) values ('new-one', 'canary', 'times', '{10:00}', 'UTC') returning id`;
  t.ok(s!.id > 2, 'a new schedule gets an id after the restored ones');
  const again = await restoreBackup({ file: file!.path, url: target.url, log }).catch((err: Error & { code?: string }) => err);
  t.match(again, { code: 'restore_target_not_empty' }, 'a database with tables is refused');
  await restoreBackup({ file: file!.path, url: target.url, log, force: true });
  t.same(await digests(target.url), await digests(tdb.url), '--force replaces it');
});

t.test('a damaged backup is refused, saying so', async (t) => {
  const [file] = await listBackupFiles(dir);
  const copy = path.join(dir, 'copy', path.basename(file!.path));
  await rm(path.dirname(copy), { recursive: true, force: true });
  await import('node:fs/promises').then((fs) => fs.mkdir(path.dirname(copy)));
  await copyFile(file!.path, copy);
  await copyFile(`${file!.path}.sha256`, `${copy}.sha256`);
  const bytes = await readFile(copy);
  bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
  await writeFile(copy, bytes);
  const target = await createEmptyTestDatabase(t);
  await t.rejects(restoreBackup({ file: copy, url: target.url, log }), { code: 'backup_checksum_mismatch', message: /does not match its checksum/ });
  await t.rejects(verifyBackup(copy), { code: 'backup_checksum_mismatch' });
  await writeFile(copy, bytes.subarray(0, bytes.length - 100));
  await rm(`${copy}.sha256`);
  await t.rejects(verifyBackup(copy), { code: 'backup_unreadable' }, 'a truncated file does not read through');
});

t.test('auto picks pg_dump only when one as new as the server is on the PATH', async (t) => {
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  t.teardown(() => {
    process.env.PATH = saved;
  });
  t.same(await chooseFormat(tdb.url, 'auto'), { format: 'wombat', reason: 'no pg_dump on the PATH' });
  await t.rejects(chooseFormat(tdb.url, 'pg_dump'), { code: 'backup_tool_missing' });
  t.same(await chooseFormat(tdb.url, 'wombat'), { format: 'wombat', reason: 'BACKUP_FORMAT=wombat' });
});

t.test('retention keeps the newest of each of the last days and weeks', async (t) => {
  const at = (s: string) => ({ at: new Date(s), id: s });
  // Newest first: two on Monday 7 December, then one a day back over five weeks; weeks start on Monday.
  const days = [at('2026-12-07T15:00:00Z'), at('2026-12-07T03:30:00Z')];
  for (let i = 1; i < 35; i++) days.push(at(new Date(Date.UTC(2026, 11, 7 - i, 3, 30)).toISOString()));
  const kept = [...backupsToKeep(days, 3, 3)].map((b) => b.id).sort();
  t.same(kept, ['2026-11-29T03:30:00.000Z', '2026-12-05T03:30:00.000Z', '2026-12-06T03:30:00.000Z', '2026-12-07T15:00:00Z'].sort());
});

t.test("pg_dump's custom format where a pg_dump as new as the server is on the PATH, restored through pg_restore", async (t) => {
  const chosen = await chooseFormat(tdb.url, 'auto');
  if (chosen.format !== 'pg_dump') {
    t.comment(`skipped: ${chosen.reason}`);
    return;
  }
  const pgDir = await mkdtemp(path.join(tmpdir(), 'wombat-backup-pgdump-'));
  t.teardown(() => rm(pgDir, { recursive: true, force: true }));
  const result = await backupDatabase({ url: tdb.url, dir: pgDir, format: 'auto', keepDaily: 7, keepWeekly: 4, log });
  t.equal(result.format, 'pg_dump');
  t.match(path.basename(result.file), /^wombat-\d{8}T\d{6}Z\.pgdump$/);
  t.equal((await readFile(result.file)).subarray(0, 5).toString('latin1'), 'PGDMP');
  t.match(await verifyBackup(result.file), { format: 'pg_dump', checksum: 'ok', header: null });
  const target = await createEmptyTestDatabase(t);
  await restoreBackup({ file: result.file, url: target.url, log });
  t.same(await digests(target.url), await digests(tdb.url), 'every table is the same, row for row');
});

t.test('a backup older than this Wombat is restored at its own version, then migrated forward', async (t) => {
  const old = await createEmptyTestDatabase(t);
  const latest = Number((await tdb.sql<{ v: number }[]>`select max(version) as v from wombat.schema_migrations`)[0]!.v);
  await migrateAll({ url: old.url, log, upToVersion: latest - 1 });
  const oldDir = await mkdtemp(path.join(tmpdir(), 'wombat-backup-old-'));
  t.teardown(() => rm(oldDir, { recursive: true, force: true }));
  const result = await backupDatabase({ url: old.url, dir: oldDir, format: 'wombat', keepDaily: 7, keepWeekly: 4, log });
  t.equal(result.migrationVersion, latest - 1);
  const target = await createEmptyTestDatabase(t);
  const restored = await restoreBackup({ file: result.file, url: target.url, log });
  t.equal(restored.migratedForward.length, 1, 'the newer migration is applied after the rows');
  const sql = postgres(target.url, { max: 1, onnotice: () => {} });
  t.teardown(() => sql.end());
  t.equal(Number((await sql<{ v: number }[]>`select max(version) as v from wombat.schema_migrations`)[0]!.v), latest);
});

t.test('a stopped backup leaves no file behind', async (t) => {
  const stopDir = await mkdtemp(path.join(tmpdir(), 'wombat-backup-stop-'));
  t.teardown(() => rm(stopDir, { recursive: true, force: true }));
  const controller = new AbortController();
  controller.abort(new Error('the job timed out'));
  await t.rejects(backupDatabase({ url: tdb.url, dir: stopDir, format: 'wombat', keepDaily: 7, keepWeekly: 4, log, signal: controller.signal }), /the job timed out/);
  t.same(await readdir(stopDir), []);
});
