/**
 * Publish lag of the scheduler-engine: scheduled instant -> committed run row and
 * pg-boss job, for 1,000 schedules firing every second and for one canary among
 * 10,000 idle schedules, plus engine RSS. Creates and drops its own database.
 *
 *   DATABASE_URL=postgres://... npm run bench -w services/scheduler-engine
 *   node deploy/with-postgres.ts node services/scheduler-engine/bench/publish-lag.ts
 * BENCH_SECONDS (default 10) sets how long each scenario runs; BENCH_FIRING (default 1000)
 * and BENCH_IDLE (default 10000) how many schedules fire every second and stay idle.
 * The RSS of those two is the whole process's (the engine plus this script's own
 * pools), with the engine's node flags (package.json); then the engine runs as its
 * own process, built and from its sources, and its RSS is sampled alone.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import postgres from 'postgres';
import { sql } from 'kysely';
import { createDatabase, createLogger, startBoss } from '@wombat/core/platform';
import { migrateAll } from '@wombat/core/setup';
import { createEngine, engineOptions, loadConfig, type PublishedOccurrence } from '../src/index.ts';

const adminUrl = process.env.WOMBAT_TEST_ADMIN_URL ?? process.env.DATABASE_URL;
if (!adminUrl) {
  console.error('set DATABASE_URL (a server where databases may be created) or run under node deploy/with-postgres.ts');
  process.exit(1);
}
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const FIRING = Number(process.env.BENCH_FIRING ?? 1000);
const IDLE = Number(process.env.BENCH_IDLE ?? 10_000);
const log = createLogger({ name: 'bench', level: process.env.LOG_LEVEL ?? 'warn', format: 'json' });
const name = `wombat_bench_${randomBytes(4).toString('hex')}`;
const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
await admin.unsafe(`create database "${name}"`);
const url = Object.assign(new URL(adminUrl), { pathname: `/${name}` }).toString();

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function scenario(title: string, firing: number, idle: number): Promise<void> {
  const database = createDatabase({ url, poolSize: 10, applicationName: 'wombat-bench' });
  const boss = await startBoss({ url, role: 'producer', log, poolSize: 4 });
  await sql`truncate wombat.schedules, wombat.runs`.execute(database.db);
  await sql`delete from pgboss.job where name = 'canary'`.execute(database.db);
  await sql`insert into wombat.schedules (name, job, kind, cron, overlap, missed)
            select 'firing-' || i, 'canary', 'cron', '* * * * * *', 'allow', 'all' from generate_series(1, ${firing}) i`.execute(database.db);
  // Idle: daily at a minute that is not now.
  await sql`insert into wombat.schedules (name, job, kind, times, timezone)
            select 'idle-' || i, 'canary', 'times', array[lpad(((extract(hour from now() at time zone 'UTC')::int + 12) % 24)::text, 2, '0') || ':00'], 'UTC'
            from generate_series(1, ${idle}) i`.execute(database.db);
  const lags: number[] = [];
  let warm = false;
  const engine = createEngine({
    db: database.db,
    sql: database.sql,
    boss,
    log,
    // The defaults an operator gets, without built-ins and without maintenance during the run.
    options: { ...engineOptions(loadConfig({}), { host: 'bench', pid: process.pid }), builtIns: [], maintenanceIntervalMs: 3_600_000 },
    onPublished: (rows: PublishedOccurrence[], committedAtMs: number) => {
      if (!warm) return;
      for (const r of rows) lags.push(committedAtMs - r.scheduledFor.getTime());
    },
  });
  await engine.start();
  await new Promise((r) => setTimeout(r, 2_000)); // the first seconds include start-up and cold caches
  warm = true;
  let rssMax = 0;
  let heapMax = 0;
  let heapTotalMax = 0;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    rssMax = Math.max(rssMax, m.rss);
    heapMax = Math.max(heapMax, m.heapUsed);
    heapTotalMax = Math.max(heapTotalMax, m.heapTotal);
  }, 200);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  clearInterval(sampler);
  await engine.stop();
  const counts = await sql<{ runs: number; jobs: number }>`
    select (select count(*)::int from wombat.runs) as runs, (select count(*)::int from pgboss.job where name = 'canary') as jobs`.execute(database.db);
  await boss.stop({ graceful: false, close: true });
  await database.close();
  lags.sort((a, b) => a - b);
  const c = counts.rows[0]!;
  console.log(
    `${title}: ${lags.length} occurrences in ${seconds}s | publish lag min ${(lags[0] ?? NaN).toFixed(1)} ms, p50 ${percentile(lags, 50).toFixed(1)} ms, p99 ${percentile(lags, 99).toFixed(1)} ms, max ${(lags.at(-1) ?? NaN).toFixed(1)} ms | process RSS max ${(rssMax / 2 ** 20).toFixed(0)} MiB, JS heap used max ${(heapMax / 2 ** 20).toFixed(0)} MiB of ${(heapTotalMax / 2 ** 20).toFixed(0)} MiB | runs ${c.runs}, jobs ${c.jobs}`,
  );
}

/** Highest RSS of `pid` (Linux /proc) sampled every 200 ms for `ms`. */
async function sampleRss(pid: number, ms: number): Promise<number> {
  let max = 0;
  for (const end = Date.now() + ms; Date.now() < end; ) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    max = Math.max(max, Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024);
    await new Promise((r) => setTimeout(r, 200));
  }
  return max;
}

/**
 * The engine as systemd runs it (its unit's node flags and environment): its own
 * process, built (dist/main.mjs, what systemd and Docker run) and from its sources
 * (src/main.ts, what `npm start` runs), over the schedules the last scenario left
 * (1 firing every second, the rest idle).
 */
async function serviceRss(): Promise<void> {
  const root = path.resolve(import.meta.dirname, '../../..');
  const unit = await readFile(path.join(root, 'systemd/wombat-scheduler-engine.service'), 'utf8');
  const args = /^ExecStart=\S+ (.*)$/m.exec(unit)![1]!.split(' ');
  const unitEnv = Object.fromEntries([...unit.matchAll(/^Environment=(.*)$/gm)].flatMap((m) => m[1]!.split(' ').map((kv) => kv.split('=') as [string, string])));
  const figures: string[] = [];
  const rss: Record<string, number> = {};
  for (const [label, file] of [['built', 'services/scheduler-engine/dist/main.mjs'], ['sources', 'services/scheduler-engine/src/main.ts']] as const) {
    if (!existsSync(path.join(root, file))) {
      figures.push(`${label}: no ${file} (npm run build)`);
      continue;
    }
    const child = spawn(process.execPath, args.map((a) => (a.endsWith('dist/main.mjs') ? file : a)), {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', ...unitEnv, DATABASE_URL: url, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    await new Promise((r) => setTimeout(r, 3_000)); // start-up, then idle
    rss[label] = await sampleRss(child.pid!, seconds * 1000);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    figures.push(`${label} (${path.basename(path.dirname(file))}/${path.basename(file)}) ${(rss[label] / 2 ** 20).toFixed(0)} MiB`);
  }
  const ratio = rss.built && rss.sources ? ` | built/sources x${(rss.built / rss.sources).toFixed(2)}` : '';
  console.log(`engine process as its unit runs it (${args.filter((a) => a.startsWith('-')).join(' ')} ${Object.entries(unitEnv).filter(([k]) => k !== 'LOG_FORMAT' && k !== 'NODE_ENV').map(([k, v]) => `${k}=${v}`).join(' ')}), RSS max over ${seconds}s, 1 schedule firing every second among ${IDLE.toLocaleString('en')} idle: ${figures.join(', ')}${ratio}`);
}

const rssAtStart = process.memoryUsage().rss;
try {
  await migrateAll({ url, log });
  console.log(`process RSS before any engine: ${(rssAtStart / 2 ** 20).toFixed(0)} MiB`);
  if (process.env.BENCH_ONLY !== 'idle') await scenario(`${FIRING.toLocaleString('en')} schedules firing every second`, FIRING, 0);
  await scenario(`1 schedule firing every second among ${IDLE.toLocaleString('en')} idle`, 1, IDLE);
  await serviceRss();
} finally {
  await admin.unsafe(`drop database if exists "${name}" with (force)`);
  await admin.end();
}
