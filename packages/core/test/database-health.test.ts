import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import postgres from 'postgres';
import { loadConfig } from '@wombat/core/platform';
import { alertFields, cachedDatabaseHealth, createAlerting, readDatabaseHealth, type AlertingOptions } from '@wombat/core/alerts';
import { createTestDatabase } from '@wombat/core/testing';

const tdb = await createTestDatabase(t);
const dir = mkdtempSync(path.join(tmpdir(), 'wombat-health-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Every database condition off unless the test turns it on (the test server is shared with other test files). */
const QUIET = {
  ALERT_DB_CONNECTIONS_WARNING_PCT: '100',
  ALERT_DB_CONNECTIONS_CRITICAL_PCT: '100',
  ALERT_TRANSACTION_AGE_WARNING_SECONDS: '604800',
  ALERT_TRANSACTION_AGE_CRITICAL_SECONDS: '604800',
  ALERT_DEAD_ROWS_WARNING_PCT: '100',
  ALERT_DEAD_ROWS_CRITICAL_PCT: '100',
  ALERT_DISK_WARNING_PCT: '100',
  ALERT_DISK_CRITICAL_PCT: '100',
};

function options(env: Record<string, string>): AlertingOptions {
  return {
    ...loadConfig(alertFields, { ALERT_DAILY_REPORT_TIME: 'off', ALERT_RESOLVE_AFTER_MS: '0', ALERT_WORKERS_WARNING: '0', ...QUIET, ...env }),
    timezone: 'UTC',
    watchedPaths: [{ role: 'data_root', path: dir }, { role: 'backup_dir', path: path.join(dir, 'not', 'made', 'yet') }],
  };
}

async function openAlerts(kind: string) {
  const r = await sql<{ key: string; severity: string; subject: string; message: string; details: Record<string, unknown> }>`
    select key, severity, subject, message, details from wombat.alerts where state = 'open' and kind = ${kind} order by key`.execute(tdb.db);
  return r.rows;
}

t.beforeEach(async () => {
  await sql`truncate wombat.alerts, wombat.alert_deliveries, wombat.alert_counters, wombat.engines, wombat.database_size_samples`.execute(tdb.db);
  await sql`insert into wombat.engines (id, host, pid, version, heartbeat_interval_ms, enabled) values (gen_random_uuid(), 'test', 1, 'test', 3600000, true)`.execute(tdb.db);
});

t.test('the figures: size, connections, the hot tables with their partitions, the largest tables, the watched file systems', async (t) => {
  const h = await readDatabaseHealth(tdb.db, [{ role: 'data_root', path: dir }, { role: 'backup_dir', path: path.join(dir, 'not', 'made', 'yet') }]);
  const [size] = await tdb.sql<{ n: string }[]>`select pg_database_size(current_database())::text as n`;
  t.ok(Math.abs(h.size_bytes - Number(size!.n)) < 1_048_576, 'size as pg_database_size says');
  t.ok(h.connections.used >= 1 && h.connections.used <= h.connections.max, `${h.connections.used} of ${h.connections.max} connections`);
  t.equal(h.connections.ratio, Math.round((h.connections.used / h.connections.max) * 10_000) / 10_000);
  t.same(h.hot_tables.map((x) => x.table).sort(), ['pgboss.job', 'wombat.runs'], 'the runs and pg-boss\'s job table (with its partitions)');
  t.ok(h.largest_tables.length > 0 && h.largest_tables.length <= 10);
  t.ok(h.largest_tables.every((x) => /^(wombat|pgboss)\./.test(x.table)), 'only Wombat\'s and pg-boss\'s tables');
  t.notOk(h.largest_tables.some((x) => /^pgboss\.j[0-9a-f]{20,}/.test(x.table)), 'pg-boss\'s queue partitions are counted with their table');
  t.equal(h.growth_bytes_per_day, null, 'no growth before a day of samples');
  const fs = await statfs(dir);
  const data = h.filesystems.find((f) => f.role === 'data_root')!;
  t.equal(data.size_bytes, fs.blocks * fs.bsize, 'the data directory\'s file system');
  t.ok(Math.abs(data.free_bytes - fs.bavail * fs.bsize) < 64 * 1_048_576, 'its free space');
  t.ok(data.used_ratio > 0 && data.used_ratio < 1);
  t.equal(h.filesystems.find((f) => f.role === 'backup_dir')?.size_bytes, data.size_bytes, 'a directory not made yet is measured where it will be');
  const light = await readDatabaseHealth(tdb.db, [], { sizes: false });
  t.match(light, { size_bytes: 0, largest_tables: [], connections: { used: Number } }, 'the evaluator\'s read leaves out the sizes');
  t.equal(light.hot_tables.length, 2);
});

t.test('dead rows of the runs table, summed and shown per table', async (t) => {
  // Rows inserted and deleted leave dead tuples behind until vacuum; the statistics arrive within a second or so.
  await sql`alter table wombat.runs set (autovacuum_enabled = false)`.execute(tdb.db);
  t.teardown(() => sql`alter table wombat.runs reset (autovacuum_enabled)`.execute(tdb.db));
  await sql`
    insert into wombat.runs (id, job, trigger, state, params)
    select gen_random_uuid(), 'canary', 'task', 'completed', '{}' from generate_series(1, 300)`.execute(tdb.db);
  await sql`delete from wombat.runs where job = 'canary' and trigger = 'task'`.execute(tdb.db);
  let runs;
  for (let i = 0; i < 100; i++) {
    runs = (await readDatabaseHealth(tdb.db)).hot_tables.find((x) => x.table === 'wombat.runs');
    if (runs && runs.dead_rows >= 300) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(runs!.dead_rows >= 300, `${runs!.dead_rows} dead rows counted`);
  t.ok(runs!.dead_ratio > 0.5);

  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ ALERT_DEAD_ROWS_WARNING_PCT: '50', ALERT_DEAD_ROWS_CRITICAL_PCT: '100', ALERT_DEAD_ROWS_MIN_ROWS: '100' }) });
  await alerting.evaluate();
  t.match(await openAlerts('dead_rows'), [{ key: 'dead_rows:wombat.runs', severity: 'warning', subject: /^wombat\.runs is \d+% dead rows$/, message: /Autovacuum is behind/ }]);
  const fewer = createAlerting({ db: tdb.db, log: tdb.log, options: options({ ALERT_DEAD_ROWS_WARNING_PCT: '50', ALERT_DEAD_ROWS_CRITICAL_PCT: '100', ALERT_DEAD_ROWS_MIN_ROWS: '100000' }) });
  t.match(await fewer.evaluate(), { resolved: 1 }, 'below the least count of dead rows, the share does not count');
});

t.test('a transaction held open raises an alert naming how to find it, and resolves once it ends', async (t) => {
  const other = postgres(tdb.url, { max: 1, onnotice: () => {} });
  t.teardown(() => other.end({ timeout: 1 }));
  const held = other.reserve();
  const conn = await held;
  await conn`begin`;
  await conn`select 1`;
  await new Promise((r) => setTimeout(r, 2100));
  const h = await readDatabaseHealth(tdb.db);
  t.ok(h.oldest_transaction_s !== null && h.oldest_transaction_s >= 2, `the oldest transaction is ${h.oldest_transaction_s} s old`);

  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ ALERT_TRANSACTION_AGE_WARNING_SECONDS: '1', ALERT_TRANSACTION_AGE_CRITICAL_SECONDS: '3600' }) });
  await alerting.evaluate();
  t.match(await openAlerts('transaction_age'), [{ key: 'transaction_age', severity: 'warning', message: /pg_stat_activity/ }]);
  await conn`commit`;
  conn.release();
  // Other test files share this server: what counts is that ours is no longer the oldest one past a second.
  let resolved = false;
  for (let i = 0; i < 50 && !resolved; i++) {
    const again = await readDatabaseHealth(tdb.db);
    if (again.oldest_transaction_s === null || again.oldest_transaction_s < 1) {
      resolved = (await alerting.evaluate())?.resolved === 1;
    }
    if (!resolved) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(resolved, 'resolved once the transaction ended');
});

t.test('connections and full file systems against their thresholds', async (t) => {
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ ALERT_DB_CONNECTIONS_WARNING_PCT: '0', ALERT_DB_CONNECTIONS_CRITICAL_PCT: '100', ALERT_DISK_WARNING_PCT: '0', ALERT_DISK_CRITICAL_PCT: '0.001' }) });
  await alerting.evaluate();
  t.match(await openAlerts('db_connections'), [{ key: 'db_connections', severity: 'warning', subject: /^PostgreSQL connections at \d+% \(\d+ of \d+\)$/ }]);
  const disks = await openAlerts('disk_space');
  t.same(disks.map((d) => d.key), ['disk_space:backup_dir', 'disk_space:data_root'], 'each watched directory');
  t.ok(disks.every((d) => d.severity === 'critical'));
  t.match(disks.find((d) => d.key === 'disk_space:data_root'), { message: new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(data_root\\) has [\\d.]+ GiB free of [\\d.]+ GiB`) });
  t.notOk(JSON.stringify(disks).includes('database'), 'a database directory this role may not read is not reported');
});

t.test('the size is sampled once per day; growth per day from a week of samples', async (t) => {
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({}) });
  await alerting.evaluate();
  const samples = await tdb.sql<{ day: string; bytes: string }[]>`select day::text, bytes::text from wombat.database_size_samples`;
  t.equal(samples.length, 1, 'one sample today');
  t.ok(Number(samples[0]!.bytes) > 0);
  // Two days ago the database was 1 MiB smaller.
  await tdb.sql`insert into wombat.database_size_samples (day, bytes, sampled_at)
                select current_date - 2, bytes - 1048576, sampled_at - interval '2 days' from wombat.database_size_samples`;
  const h = await readDatabaseHealth(tdb.db);
  t.ok(Math.abs(h.growth_bytes_per_day! - 524_288) < 1024, `growth ${h.growth_bytes_per_day} bytes per day`);
});

t.test('a cached reader reads at most once per its time to live', async (t) => {
  const read = cachedDatabaseHealth(tdb.db, [], 60_000);
  const [a, b] = await Promise.all([read(), read()]);
  t.equal(a, b, 'concurrent callers share one read');
  t.equal(await read(), a, 'a later caller within the time to live gets the same figures');
  const fresh = cachedDatabaseHealth(tdb.db, [], 0);
  const x = await fresh();
  t.not(await fresh(), x, 'with no time to live, every call reads');
});
