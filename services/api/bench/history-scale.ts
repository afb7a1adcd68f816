/**
 * Read paths and background work at scale. Prints figures; asserts nothing.
 *
 * 1. Read paths flat in history: GET /api/overview, /metrics, /api/runs?limit=50 (with
 *    and without filters), /api/scheduler/status, /api/dead-letters and /api/data/series
 *    over real HTTP, p50/p99, on an empty database and then with SCALE_RUNS runs finished
 *    in the last 24 h (one insert ... select generate_series, through the run roll-ups'
 *    triggers as any writer, then one fold and an analyze).
 * 2. Background work flat in backlog: CPU of the database's PostgreSQL backends over
 *    SCALE_IDLE_SECONDS with the scheduler-engine (src/main.ts, default settings) running
 *    on an empty database, then with SCALE_RUNS runs queued (their pg-boss jobs waiting)
 *    and no worker. CPU is read from /proc/<pid>/stat of every backend pg_stat_activity
 *    shows for the database, sampled each second (a backend that starts in the window
 *    counts from zero); PostgreSQL's shared processes (checkpointer, WAL writer) are not in it.
 *
 *   npm run bench -w services/api                    (runs it after the others)
 *   SCALE_RUNS=100000 node ../../deploy/with-postgres.ts node bench/history-scale.ts
 *   BENCH_ONLY=scale npm run bench -w services/api   (this one only)
 * SCALE_RUNS (default 1000000), SCALE_IDLE_SECONDS (default 30), SCALE_SAMPLES (default 60 per figure),
 * SCALE_PARTS (reads,idle: which halves run; default both).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { repoRoot } from '@wombat/core/platform';
import { foldRunCounts } from '@wombat/core/runs';
import { migrateAll } from '@wombat/core/setup';
import { createEmptyTestDatabase, testAdminUrl, testLogger } from '@wombat/core/testing';
import { BENCH_TOKEN as TOKEN, startBenchApi } from './bench-api.ts';

const RUNS = Number(process.env.SCALE_RUNS ?? 1_000_000);
const IDLE_S = Number(process.env.SCALE_IDLE_SECONDS ?? 30);
const SAMPLES = Number(process.env.SCALE_SAMPLES ?? 60);
/** Which halves run: reads, idle (default both). */
const PARTS = new Set((process.env.SCALE_PARTS ?? 'reads,idle').split(','));
const READS = [
  '/api/overview',
  '/metrics',
  '/api/runs?limit=50',
  '/api/runs?limit=50&job=canary',
  '/api/runs?limit=50&state=completed',
  '/api/runs?limit=50&job=canary&state=failed',
  '/api/scheduler/status',
  '/api/dead-letters?limit=50',
  '/api/data/series',
];

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function timeReads(base: string, routes: readonly string[] = READS): Promise<Map<string, { p50: number; p99: number }>> {
  const out = new Map<string, { p50: number; p99: number }>();
  for (const route of routes) {
    const get = async () => {
      const started = performance.now();
      const res = await fetch(base + route, { headers: { authorization: `Bearer ${TOKEN}` } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${route} answered ${res.status}`);
      return performance.now() - started;
    };
    for (let i = 0; i < 5; i++) await get();
    const times: number[] = [];
    for (let i = 0; i < SAMPLES; i++) times.push(await get());
    times.sort((a, b) => a - b);
    out.set(route, { p50: percentile(times, 50), p99: percentile(times, 99) });
  }
  return out;
}

/** Clock ticks (user + system) a process has used; undefined once it is gone. */
function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

/** CPU seconds the database's backends use over `seconds` (100 ticks a second, Linux's USER_HZ). */
async function backendCpu(admin: postgres.Sql, database: string, seconds: number): Promise<number> {
  const pids = async () => (await admin<{ pid: number }[]>`select pid from pg_stat_activity where datname = ${database}`).map((r) => r.pid);
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  for (const pid of await pids()) first.set(pid, cpuTicks(pid) ?? 0);
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, end - performance.now()))));
    for (const pid of await pids()) {
      const ticks = cpuTicks(pid);
      if (ticks !== undefined) last.set(pid, ticks);
      if (!first.has(pid)) first.set(pid, 0);
    }
  }
  let ticks = 0;
  for (const [pid, at] of last) ticks += at - (first.get(pid) ?? 0);
  return ticks / 100;
}

function startEngine(url: string): ChildProcess {
  const child = spawn(process.execPath, [path.join(repoRoot, 'services/scheduler-engine/src/main.ts')], {
    env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'warn', LOG_FORMAT: 'json' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return child;
}

const stopEngine = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });

if (process.env.BENCH_ONLY && !process.env.BENCH_ONLY.split(',').includes('scale')) process.exit(0);
const teardowns: (() => unknown)[] = [];
const t = { teardown: (fn: () => unknown) => void teardowns.push(fn) };
const log = testLogger('bench');
const k = (n: number) => (n >= 1000 ? `${n / 1000}k` : String(n));
try {
  // 1. Reads, empty and with SCALE_RUNS runs finished in the last 24 h.
  if (PARTS.has('reads')) {
    const api = await startBenchApi(teardowns);
    const { url, base, database } = api;
    await database.sql`insert into wombat.schedules (name, job, kind, every, every_seconds) values ('bench-canary', 'canary', 'every', '1m', 60)`;

    const empty = await timeReads(base);
    // Seeding and vacuum take longer than the pool's statement deadline: a connection of their own.
    const seeder = postgres(url, { max: 1, onnotice: () => {} });
    teardowns.push(() => seeder.end());
    let started = performance.now();
    await seeder`
      insert into wombat.runs (id, job, trigger, schedule_id, state, params, attempts, created_at, scheduled_for, published_at, started_at, finished_at, progress)
      select gen_random_uuid(), (array['canary', 'fetch-candles', 'collect-prices', 'backtest'])[1 + n % 4],
        case when n % 5 = 0 then 'task' else 'schedule' end, case when n % 5 = 0 then null else -n end,
        (array['completed', 'completed', 'completed', 'completed', 'completed', 'completed', 'failed', 'skipped', 'missed', 'cancelled'])[1 + n % 10],
        jsonb_build_object('exchange', 'upbit', 'symbol', 'KRW-' || (n % 50), 'timeframe', '1m'), 1, t, t, t, t + interval '15 milliseconds', t + interval '2 seconds', 1
      from generate_series(1, ${RUNS}) n, lateral (select now() - (n * interval '24 hours' / ${RUNS}) as t) x`;
    const insertSeconds = (performance.now() - started) / 1000;
    started = performance.now();
    await foldRunCounts(database.db);
    const foldSeconds = (performance.now() - started) / 1000;
    await seeder`vacuum analyze wombat.runs`;
    const full = await timeReads(base);

    console.log(`read paths, empty vs ${RUNS.toLocaleString('en')} runs finished in the last 24 h (inserted through the roll-up triggers in ${insertSeconds.toFixed(1)} s, folded in ${foldSeconds.toFixed(1)} s), ${SAMPLES} samples each`);
    console.log(`${'route'.padEnd(46)} empty p50   p99  ${k(RUNS).padStart(5)} p50   p99   ratio p50  p99`);
    for (const route of READS) {
      const e = empty.get(route)!;
      const f = full.get(route)!;
      console.log(`${route.padEnd(46)} ${e.p50.toFixed(1).padStart(9)} ${e.p99.toFixed(1).padStart(5)} ${f.p50.toFixed(1).padStart(9)} ${f.p99.toFixed(1).padStart(5)}   x${(f.p50 / e.p50).toFixed(2)} x${(f.p99 / e.p99).toFixed(2)}`);
    }
    // A page half-way down the history: by keyset (starting_after) and by offset, against the first page.
    const depth = Math.floor(RUNS / 2);
    const [mid] = await seeder<{ id: string }[]>`select id from wombat.runs order by created_at desc, id desc offset ${depth} limit 1`;
    if (mid) {
      const deep = [`/api/runs?limit=50&starting_after=${mid.id}`, `/api/runs?limit=50&offset=${depth}`];
      const d = await timeReads(base, deep);
      const first = full.get('/api/runs?limit=50')!;
      console.log(`a page after ${depth.toLocaleString('en')} runs, against the first page (p50 ${first.p50.toFixed(1)} ms, p99 ${first.p99.toFixed(1)} ms) with ${RUNS.toLocaleString('en')} runs`);
      for (const [label, route] of [['starting_after', deep[0]!], ['offset', deep[1]!]] as const) {
        const r = d.get(route)!;
        console.log(`${`  /api/runs?limit=50&${label}=...`.padEnd(46)} p50 ${r.p50.toFixed(1).padStart(7)} p99 ${r.p99.toFixed(1).padStart(7)}   x${(r.p50 / first.p50).toFixed(2)} x${(r.p99 / first.p99).toFixed(2)}`);
      }
    }
    await api.stop();
  }

  // 2. Idle PostgreSQL CPU with the engine running: empty, then SCALE_RUNS runs queued, no worker.
  if (PARTS.has('idle')) {
    const idle = await createEmptyTestDatabase(t, 'wombat_bench');
    await migrateAll({ url: idle.url, log });
    const admin = postgres(testAdminUrl(), { max: 1, onnotice: () => {} });
    teardowns.push(() => admin.end());
    const engine = startEngine(idle.url);
    teardowns.push(() => stopEngine(engine));
    await new Promise((r) => setTimeout(r, Math.min(5, IDLE_S) * 1000)); // started, first rounds done
    const idleEmpty = await backendCpu(admin, idle.name, IDLE_S);
    const seed = postgres(idle.url, { max: 1, onnotice: () => {} });
    teardowns.push(() => seed.end());
    await seed`
      insert into wombat.runs (id, job, trigger, state, params, created_at, published_at)
      select gen_random_uuid(), 'canary', 'task', 'queued', '{}', now() - (n * interval '1 hour' / ${RUNS}), now()
      from generate_series(1, ${RUNS}) n`;
    await seed`insert into pgboss.job (id, name, data, retry_limit) select id, 'canary', '{}', 0 from wombat.runs where state = 'queued' and trigger = 'task'`;
    await seed`vacuum analyze`;
    await new Promise((r) => setTimeout(r, Math.min(10, 2 * IDLE_S) * 1000)); // the fold and the reconciler's first rounds over the backlog
    const idleBacklog = await backendCpu(admin, idle.name, IDLE_S);
    console.log(`PostgreSQL CPU of the database's backends over ${IDLE_S} s, scheduler-engine running, no worker`);
    console.log(`  empty database                 ${idleEmpty.toFixed(2)} s`);
    console.log(`  ${k(RUNS).padEnd(5)} runs queued (pg-boss jobs)  ${idleBacklog.toFixed(2)} s   x${(idleBacklog / Math.max(idleEmpty, 0.01)).toFixed(2)}`);
  }
} finally {
  for (const fn of teardowns.reverse()) await fn();
}
