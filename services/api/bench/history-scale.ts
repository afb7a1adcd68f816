/**
 * Read paths and background work at scale. Prints figures; asserts nothing.
 *
 * 1. Read paths flat in history: GET /api/overview, /metrics, /api/runs?limit=50 (with
 *    and without filters), /api/scheduler/status, /api/dead-letters and /api/data/series
 *    over real HTTP, p50/p99, on an empty database, with SCALE_BASELINE_RUNS runs (enough to
 *    fill every page) and then with SCALE_RUNS runs finished in the last 24 h (inserted by
 *    insert ... select generate_series, through the run roll-ups' triggers as any writer,
 *    then one fold and an analyze).
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
 * SCALE_PARTS (reads,idle: which halves run; default both), SCALE_BASELINE_RUNS (default 1000).
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
/** The small history the large one is also compared with: enough runs to fill every page (SCALE_BASELINE_RUNS). */
const BASELINE_RUNS = Number(process.env.SCALE_BASELINE_RUNS ?? 1000);
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

/**
 * CPU seconds the database's backends use over `seconds` (100 ticks a second, Linux's USER_HZ), in
 * all and per backend type: client backends are the services' statements, autovacuum workers
 * PostgreSQL's own upkeep of tables that changed (a bulk load sets it off once).
 */
async function backendCpu(admin: postgres.Sql, database: string, seconds: number): Promise<{ total: number; byType: Map<string, number> }> {
  const backends = async () => admin<{ pid: number; type: string }[]>`select pid, backend_type as type from pg_stat_activity where datname = ${database}`;
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  const typeOf = new Map<number, string>();
  for (const b of await backends()) {
    first.set(b.pid, cpuTicks(b.pid) ?? 0);
    typeOf.set(b.pid, b.type);
  }
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, end - performance.now()))));
    for (const b of await backends()) {
      const ticks = cpuTicks(b.pid);
      if (ticks !== undefined) last.set(b.pid, ticks);
      if (!first.has(b.pid)) first.set(b.pid, 0);
      typeOf.set(b.pid, b.type);
    }
  }
  const byType = new Map<string, number>();
  let total = 0;
  for (const [pid, at] of last) {
    const used = (at - (first.get(pid) ?? 0)) / 100;
    total += used;
    byType.set(typeOf.get(pid)!, (byType.get(typeOf.get(pid)!) ?? 0) + used);
  }
  return { total, byType };
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
    // The same day of runs, first one run in every RUNS / BASELINE_RUNS (a history that fills
    // every page and every minute of the roll-ups), then the rest.
    const every = Math.max(1, Math.floor(RUNS / BASELINE_RUNS));
    // What autovacuum does within its next minute: the runs analysed, and the dead delta rows the
    // fold left (run_count_deltas is emptied by every fold) gone, so reads do not scan them.
    const vacuum = () => seeder`vacuum analyze wombat.runs, wombat.run_counts, wombat.run_count_deltas`;
    const seed = (which: 'baseline' | 'rest') => seeder`
      insert into wombat.runs (id, job, trigger, schedule_id, state, params, attempts, created_at, scheduled_for, published_at, started_at, finished_at, progress)
      select gen_random_uuid(), (array['canary', 'fetch-candles', 'collect-prices', 'backtest'])[1 + n % 4],
        case when n % 5 = 0 then 'task' else 'schedule' end, case when n % 5 = 0 then null else -n end,
        (array['completed', 'completed', 'completed', 'completed', 'completed', 'completed', 'failed', 'skipped', 'missed', 'cancelled'])[1 + n % 10],
        jsonb_build_object('exchange', 'upbit', 'symbol', 'KRW-' || (n % 50), 'timeframe', '1m'), 1, t, t, t, t + interval '15 milliseconds', t + interval '2 seconds', 1
      from generate_series(1, ${RUNS}) n, lateral (select now() - (n * interval '24 hours' / ${RUNS}) as t) x
      where (n % ${every} = 0) = ${which === 'baseline'}`;
    await seed('baseline');
    await foldRunCounts(database.db);
    await vacuum();
    const baseline = await timeReads(base);
    let started = performance.now();
    await seed('rest');
    const insertSeconds = (performance.now() - started) / 1000;
    started = performance.now();
    await foldRunCounts(database.db);
    const foldSeconds = (performance.now() - started) / 1000;
    await vacuum();
    const full = await timeReads(base);

    const b = k(Math.floor(RUNS / every));
    console.log(`read paths with no runs, ${b} and ${RUNS.toLocaleString('en')} runs finished in the last 24 h (inserted through the roll-up triggers in ${insertSeconds.toFixed(1)} s, folded in ${foldSeconds.toFixed(1)} s), ${SAMPLES} samples each, ms`);
    console.log(`${'route'.padEnd(46)} empty p50   p99  ${b.padStart(5)} p50   p99  ${k(RUNS).padStart(5)} p50   p99   ${k(RUNS)}/empty p50  p99   ${k(RUNS)}/${b} p50  p99`);
    const x = (a: number, z: number) => `x${(a / z).toFixed(2)}`.padStart(6);
    for (const route of READS) {
      const e = empty.get(route)!;
      const m = baseline.get(route)!;
      const f = full.get(route)!;
      const ms = (v: { p50: number; p99: number }) => `${v.p50.toFixed(1).padStart(9)} ${v.p99.toFixed(1).padStart(5)}`;
      console.log(`${route.padEnd(46)} ${ms(e)} ${ms(m)} ${ms(f)}   ${x(f.p50, e.p50)} ${x(f.p99, e.p99)}   ${x(f.p50, m.p50)} ${x(f.p99, m.p99)}`);
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
    const types = (c: { byType: Map<string, number> }) => [...c.byType].map(([type, s]) => `${type} ${s.toFixed(2)}`).join(', ');
    const clients = (c: { byType: Map<string, number> }) => c.byType.get('client backend') ?? 0;
    console.log(`PostgreSQL CPU of the database's backends over ${IDLE_S} s, scheduler-engine running, no worker`);
    console.log(`  empty database                 ${idleEmpty.total.toFixed(2)} s (${types(idleEmpty)})`);
    console.log(`  ${k(RUNS).padEnd(5)} runs queued (pg-boss jobs)  ${idleBacklog.total.toFixed(2)} s   x${(idleBacklog.total / Math.max(idleEmpty.total, 0.01)).toFixed(2)} (${types(idleBacklog)})`);
    console.log(`  client backends alone (the services' statements): x${(clients(idleBacklog) / Math.max(clients(idleEmpty), 0.01)).toFixed(2)}`);
  }
} finally {
  for (const fn of teardowns.reverse()) await fn();
}
