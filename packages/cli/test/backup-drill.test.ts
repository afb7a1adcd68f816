import t from 'tap';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import postgres from 'postgres';
import { makePosts, startFakeExchange, startFakeReddit, startFakeShop } from '@wombat/collectors/testing';
import { recordMessageAlert } from '@wombat/core/alerts';
import { backupDatabase } from '@wombat/core/backup';
import { startBoss } from '@wombat/core/platform';
import { cancelRun } from '@wombat/core/runs';
import { createEmptyTestDatabase, createTestDatabase, tableDigests, testLogger } from '@wombat/core/testing';
import { startEngine, startWorker, tempDir, wombat } from './helpers.ts';

/**
 * The restore drill: a database filled by the real services (engine and worker processes, the
 * CLI, the fake exchange), backed up while they run, restored into a new database, compared
 * table by table, and then run again by a new engine and worker, which carry on.
 */
t.setTimeout(600_000);
const tdb = await createTestDatabase(t);
const fake = await startFakeExchange();
t.teardown(() => fake.close());
const shop = await startFakeShop();
t.teardown(() => shop.close());
const reddit = await startFakeReddit();
t.teardown(() => reddit.close());
reddit.addPosts(makePosts('wombats', 30, Math.floor(Date.now() / 1000) - 60, 300, 'w'));
const dataRoot = await tempDir(t);
const backupDir = await tempDir(t);
const sources = path.join(await tempDir(t), 'sources.yaml');
await writeFile(
  sources,
  `user_agent: "WombatDrill/1.0 (+mailto:ops@example.com)"\ndefaults: { requestsPerSecond: 20 }\nsources:\n` +
    `  - { name: kr, url: "${shop.url}/gpus", items: li.product, name_field: a.title, price: .price, availability: .stock, allow_private: true }\n`,
);
const env = {
  DATABASE_URL: tdb.url,
  TZ: 'UTC',
  DATA_ROOT: dataRoot,
  UPBIT_BASE_URL: fake.url,
  BACKUP_DIR: backupDir,
  BACKUP_FORMAT: 'wombat',
  PRICE_CRAWL_SOURCES: sources,
  REDDIT_SUBREDDITS: 'wombats',
  REDDIT_BASE_URL: reddit.url,
};
const serviceEnv = { ...env, ENGINE_RUN_RECONCILE_INTERVAL_MS: '500', WORKER_HEARTBEAT_INTERVAL_MS: '500' };
// No worker serves backtest: its task stays queued.
const queues = 'canary,collect-symbols,collect-prices,fetch-candles,database-backup';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(check: () => Promise<boolean>, limitMs = 60_000): Promise<boolean> {
  const until = Date.now() + limitMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await sleep(200);
  }
  return check();
}

type Q = postgres.Sql | postgres.ReservedSql;

const states = async (sql: Q) =>
  Object.fromEntries((await sql<{ state: string; n: number }[]>`select state, count(*)::int as n from wombat.runs group by state`).map((r) => [r.state, r.n]));

t.test('a backup taken while the services run restores into a database the services carry on with', async (t) => {
  await startWorker(t, { ...serviceEnv, WORKER_QUEUES: queues });
  const boss = await startBoss({ url: tdb.url, role: 'producer', log: testLogger(), poolSize: 2 });
  t.teardown(() => boss.stop({ graceful: false, close: true }));

  // Schedules of every kind, through the CLI.
  for (const args of [
    ['--name', 'tick', '--job', 'canary', '--every', '1s'],
    ['--name', 'slow', '--job', 'canary', '--every', '1s', '--params', '{"sleep_ms":1500}'],
    ['--name', 'nightly', '--job', 'canary', '--cron', '0 3 * * *', '--timezone', 'Asia/Seoul'],
    ['--name', 'twice', '--job', 'canary', '--times', '09:00,18:00', '--timezone', 'Europe/Berlin'],
    ['--name', 'resting', '--job', 'canary', '--every', '1h', '--paused', 'drill'],
    // Occurrences before the engine starts are missed (skip); queue-one holds; failures wait to be retried.
    ['--name', 'late', '--job', 'canary', '--every', '1s', '--missed', 'skip'],
    ['--name', 'one-at-a-time', '--job', 'canary', '--every', '1s', '--overlap', 'queue-one', '--params', '{"sleep_ms":2500}'],
    ['--name', 'flaky', '--job', 'canary', '--every', '2s', '--overlap', 'allow', '--params', '{"fail":true}', '--max-retries', '5', '--retry-delay-seconds', '600'],
  ]) {
    const r = await wombat(['schedules', 'create', ...args], env);
    t.equal(r.code, 0, r.stderr);
  }
  await sleep(2500);
  await startEngine(t, serviceEnv);
  const [builtIn] = await tdb.sql<{ times: string[] }[]>`select times from wombat.schedules where name = 'database-backup' and built_in`;
  t.same(builtIn?.times, ['03:30'], 'BACKUP_DIR turns the built-in database-backup schedule on, at BACKUP_TIME');

  // Runs in every state, symbols and candles (in PostgreSQL) through the CLI and the queue.
  t.equal((await wombat(['run', 'collect-symbols'], env)).code, 0);
  const candles = await wombat(['run', 'fetch-candles', '--params', '{"exchange":"upbit","symbol":"KRW-BTC","timeframe":"1D","daysBack":20,"storage":"both"}'], env);
  t.equal(candles.code, 0, candles.stderr);
  const failed = await wombat(['trigger', 'canary', '--job', '--params', '{"fail":"permanent"}', '--wait'], env);
  t.equal(failed.code, 1, 'a dead letter');
  const long = await wombat(['trigger', 'canary', '--job', '--params', '{"sleep_ms":600000}', '--json'], env);
  const cancelled = await wombat(['trigger', 'canary', '--job', '--params', '{"sleep_ms":600000}', '--json'], env);
  const queued = await wombat(['trigger', 'backtest', '--job', '--params', '{"strategy":"ma-crossover","exchange":"upbit","symbols":["KRW-BTC"],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}', '--json'], env);
  t.equal(queued.code, 0, queued.stderr);
  const runState = async (id: string) => (await tdb.sql<{ state: string }[]>`select state from wombat.runs where id = ${id}`)[0]?.state;
  const longId: string = long.json.run_id ?? long.json.task_id;
  const cancelId: string = cancelled.json.run_id ?? cancelled.json.task_id;
  t.ok(await waitFor(async () => (await runState(longId)) === 'running' && (await runState(cancelId)) === 'running'), 'the long canaries run');
  await cancelRun(tdb.db, boss, cancelId);
  t.ok(await waitFor(async () => (await runState(cancelId)) === 'cancelled'), 'one is cancelled');

  // Crawled prices and posts from the fake shop and Reddit, and an alert through the alerts domain.
  for (const job of ['crawl-prices', 'collect-posts']) {
    const crawled = await wombat(['run', job], env);
    t.equal(crawled.code, 0, `${job}: ${crawled.stderr}`);
  }
  const [crawls] = await tdb.sql<{ prices: number; posts: number }[]>`select (select count(*)::int from wombat.price_observations) as prices, (select count(*)::int from wombat.reddit_posts) as posts`;
  t.ok(crawls!.prices > 0 && crawls!.posts === 30, 'prices and posts are stored');
  await recordMessageAlert(tdb.db, { key: 'drill', kind: 'test', severity: 'info', subject: 'restore drill', message: 'a test alert', details: {} }, 'test', []);

  t.ok(await waitFor(async () => {
    const s = await states(tdb.sql);
    return ['completed', 'skipped', 'missed', 'failed', 'cancelled', 'queued', 'running', 'retrying', 'held'].every((state) => (s[state] ?? 0) >= 1) && s.completed! >= 5;
  }), 'runs in every state');

  // The operator's backup, while everything runs.
  const now = await wombat(['backup', 'now', '--json'], env);
  t.equal(now.code, 0, now.stderr);
  t.match(now.json, { format: 'wombat', reason: 'BACKUP_FORMAT=wombat', file: String, bytes: Number, durationMs: Number, tables: Number, rows: Number });
  t.ok(existsSync(now.json.file) && existsSync(`${now.json.file}.sha256`));
  const listed = await wombat(['backup', 'list'], env);
  t.equal(listed.code, 0, listed.stderr);
  t.match(listed.stdout, /wombat-\d{8}T\d{6}Z\.wombat\.zst\s+\S+ \S+\s+\S+\s+wombat\s+ok/);
  const verified = await wombat(['backup', 'verify', now.json.file], env);
  t.equal(verified.code, 0, verified.stderr);
  t.match(verified.stdout, /checksum:\s+ok[\s\S]*wombat\.runs\s+\d+/);

  // The compared backup: the snapshot this test reads too, so both see the same instant while the services write.
  const holder = postgres(tdb.url, { max: 1, onnotice: () => {} });
  t.teardown(() => holder.end());
  const snap = await holder.reserve();
  await snap`begin isolation level repeatable read`;
  const [{ s } = { s: '' }] = await snap<{ s: string }[]>`select pg_export_snapshot() as s`;
  const drillDir = await tempDir(t);
  const backup = await backupDatabase({ url: tdb.url, dir: drillDir, format: 'wombat', keepDaily: 7, keepWeekly: 4, log: testLogger(), snapshot: s });
  const before = await tableDigests(snap);
  const runningAtBackup = (await snap<{ id: string }[]>`select id from wombat.runs where state = 'running'`).map((r) => r.id);
  const occurrencesAtBackup = await snap<{ schedule_id: number; scheduled_for: Date }[]>`select schedule_id, scheduled_for from wombat.runs where trigger = 'schedule'`;
  await snap`commit`;
  snap.release();
  t.ok(runningAtBackup.includes(longId), 'the long canary was running at backup time');

  const target = await createEmptyTestDatabase(t);
  const restored = await wombat(['restore', backup.file, '--into', target.url], {});
  t.equal(restored.code, 0, restored.stderr);
  t.match(restored.stdout, /wombat\.candles\s+[1-9]\d*\n/, 'per-table row counts, candles among them');
  const into = postgres(target.url, { max: 2, onnotice: () => {} });
  t.teardown(() => into.end());
  const after = await tableDigests(into);
  t.same(after, before, 'every table of wombat and pgboss is the same, row for row');
  t.ok(Object.keys(after).some((k) => k.startsWith('pgboss.')) && Object.keys(after).length >= 20);

  const refused = await wombat(['restore', backup.file, '--into', target.url], {});
  t.equal(refused.code, 1);
  t.match(refused.stderr, /not empty.*--force/);

  // The services on the restored database carry on.
  const restoredEnv = { ...serviceEnv, DATABASE_URL: target.url, BACKUP_DIR: await tempDir(t) };
  await startWorker(t, { ...restoredEnv, WORKER_QUEUES: queues });
  await startEngine(t, restoredEnv);
  const stillRunning = async () => (await into<{ n: number }[]>`select count(*)::int as n from wombat.runs where id in ${into(runningAtBackup)} and state = 'running'`)[0]!.n;
  t.ok(await waitFor(async () => (await stillRunning()) === 0), 'the runs running at backup time are reconciled, not left running');
  const [lost] = await into<{ state: string; error: { code: string } }[]>`select state, error from wombat.runs where id = ${longId}`;
  t.match(lost, { state: 'failed', error: { code: 'worker_lost' } });
  const lastAtBackup = Math.max(...occurrencesAtBackup.map((o) => o.scheduled_for.getTime()));
  t.ok(
    await waitFor(async () => {
      const [r] = await into<{ n: number }[]>`select count(*)::int as n from wombat.runs r join wombat.schedules s on s.id = r.schedule_id
        where s.name = 'tick' and r.trigger = 'schedule' and r.state = 'completed' and r.scheduled_for > ${new Date(lastAtBackup)}`;
      return r!.n >= 3;
    }),
    'the engine publishes new occurrences and the worker runs them',
  );
  const [dupes] = await into<{ n: number }[]>`select count(*)::int as n from (select 1 from wombat.runs where trigger = 'schedule' group by schedule_id, scheduled_for having count(*) > 1) d`;
  t.equal(dupes!.n, 0, 'no occurrence is recorded twice');
  const [jobs] = await into<{ n: number }[]>`select count(*)::int as n from (select j.id from pgboss.job j join wombat.runs r on r.id = j.id group by j.id having count(*) > 1) d`;
  t.equal(jobs!.n, 0, 'no run has two jobs');
  const [kept] = await into<{ n: number }[]>`
    select count(*)::int as n from wombat.runs r
    join unnest(${into.array(occurrencesAtBackup.map((o) => o.schedule_id))}::bigint[], ${into.array(occurrencesAtBackup.map((o) => o.scheduled_for))}::timestamptz[]) o(schedule_id, scheduled_for)
      on o.schedule_id = r.schedule_id and o.scheduled_for = r.scheduled_for
    where r.trigger = 'schedule'`;
  t.equal(kept!.n, occurrencesAtBackup.length, 'each occurrence of the backup is there once, none published again');
});
