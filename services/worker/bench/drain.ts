/**
 * Drain throughput and pickup latency of the Wombat worker against raw pg-boss and graphile-worker,
 * all measured in the same run on the same PostgreSQL, in interleaved rounds (the order rotates
 * each round, so a slow moment of a shared machine does not always hit the same runner).
 *
 *   npm run bench -w services/worker
 *   BENCH_ROUNDS=3 BENCH_JOBS=20000 BENCH_LATENCY_JOBS=100 BENCH_SCHEDULE_SECONDS=10 (defaults)
 *   BENCH_ONLY=drain1,drain2,pickup,schedule (default: all)
 *
 * - drain, 1 process: N trivial jobs are queued first, then one drainer empties the queue; the time
 *   runs from starting the drainer until the database says every job finished (for Wombat: every
 *   run row recorded completed).
 * - drain, 2 processes: the same with two drainer processes (bench/drain-child.ts).
 * - pickup: probe jobs sent one at a time to an idle drainer; send -> handler start. Wombat's figure
 *   comes from its run rows (scheduled_for, the publishing transaction's now(), -> started_at).
 * - schedule instant -> handler start: the scheduler-engine and a worker process with one
 *   every-second schedule, read from the run rows.
 * Ratios against graphile-worker are computed per round, then summarised (median, min-max).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { sql as kyselySql } from 'kysely';
import { startBoss } from '@wombat/core/platform';
import { createTestDatabase } from '@wombat/core/testing';
import { createEngine, engineOptions, loadConfig as loadEngineConfig } from '@wombat/scheduler-engine';
import { cpuMeter } from './cpu.ts';
import { SYSTEMS, describePeers, startDrainer, startProducer, type System } from './peers.ts';

const N = Number(process.env.BENCH_JOBS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PROBES = Number(process.env.BENCH_LATENCY_JOBS ?? 100);
const SCHEDULE_SECONDS = Number(process.env.BENCH_SCHEDULE_SECONDS ?? 10);
const ONLY = new Set((process.env.BENCH_ONLY ?? 'drain1,drain2,pickup,schedule').split(','));
const CHILD = fileURLToPath(new URL('./drain-child.ts', import.meta.url));

const teardowns: (() => unknown)[] = [];
const tdb = await createTestDatabase({ teardown: (fn) => teardowns.push(fn) }, { poolSize: 6 });
const producer = await startProducer(tdb.db, tdb.sql, tdb.url, tdb.log);
const meter = await cpuMeter(tdb.sql);

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
const median = (xs: number[]) => pct([...xs].sort((a, b) => a - b), 50);
const range = (xs: number[], f: (x: number) => string) => `${f(Math.min(...xs))}-${f(Math.max(...xs))}`;
const int = (x: number) => Math.round(x).toLocaleString('en-US');
const ms = (x: number) => x.toFixed(1);

async function until(what: string, check: () => Promise<boolean>, deadlineMs = 300_000, everyMs = 5): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`benchmark: gave up waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Drains N jobs with one drainer in this process; then probes pickup latency on the idle drainer. */
async function drainOneProcess(system: System, probe: boolean): Promise<{ jobsPerSecond: number; latencies: number[]; cpu: { node: number; server?: number } }> {
  await producer.fill(system, N);
  const latencies: number[] = [];
  const cpuBefore = meter.read();
  const started = performance.now();
  const drainer = await startDrainer(system, tdb.url, tdb.log, (x) => latencies.push(x));
  await until(`${system} to drain`, () => producer.empty(system));
  const jobsPerSecond = N / ((performance.now() - started) / 1000);
  const cpu = meter.perJob(cpuBefore, meter.read(), N);
  if (probe) {
    await sleep(200);
    const ids: string[] = [];
    for (let i = 0; i < PROBES; i++) {
      const id = await producer.sendOne(system);
      if (id) ids.push(id);
      await sleep(20);
    }
    if (system === 'wombat') {
      await until('wombat probes to finish', async () => {
        const got = await producer.wombatLatencies(ids);
        if (got) latencies.push(...got);
        return got !== undefined;
      }, 60_000, 20);
    } else {
      await until(`${system} probes to finish`, async () => latencies.length >= PROBES, 60_000, 20);
    }
  }
  await drainer.stop();
  return { jobsPerSecond, latencies, cpu };
}

function forkChild(system: System): { child: ChildProcess; next: (msg: string) => Promise<void>; exited: Promise<void> } {
  const child = fork(CHILD, [system, tdb.url], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = new Map<string, () => void>();
  child.on('message', (m) => waiting.get(String(m))?.());
  const exited = new Promise<void>((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${system} drainer exited with ${code}`)))));
  const next = (msg: string) => new Promise<void>((resolve) => waiting.set(msg, resolve));
  return { child, next, exited };
}

/** Drains N jobs with two drainer processes started at once. */
async function drainTwoProcesses(system: System): Promise<number> {
  await producer.fill(system, N);
  const children = [forkChild(system), forkChild(system)];
  await Promise.all(children.map((c) => c.next('ready')));
  const started = performance.now();
  for (const c of children) c.child.send('go');
  await Promise.all(children.map((c) => c.next('started')));
  await until(`${system} to drain (2 processes)`, () => producer.empty(system));
  const jobsPerSecond = N / ((performance.now() - started) / 1000);
  for (const c of children) c.child.send('stop');
  await Promise.all(children.map((c) => c.exited));
  return jobsPerSecond;
}

/** The scheduler-engine in this process, a worker process, one every-second canary schedule. */
async function scheduleToHandler(): Promise<number[]> {
  const worker = forkChild('wombat');
  await worker.next('ready');
  worker.child.send('go');
  await worker.next('started');
  const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 4 });
  const inserted = await kyselySql<{ id: number }>`
    insert into wombat.schedules (name, job, kind, cron, overlap, missed)
    values ('bench-every-second', 'canary', 'cron', '* * * * * *', 'allow', 'all') returning id`.execute(tdb.db);
  const scheduleId = inserted.rows[0]!.id;
  const engine = createEngine({
    db: tdb.db,
    sql: tdb.sql,
    boss,
    log: tdb.log,
    options: { ...engineOptions(loadEngineConfig({}), { host: 'bench', pid: process.pid }), builtIns: [] },
  });
  await engine.start();
  await sleep(2_000); // start-up and cold caches
  const from = new Date();
  await sleep(SCHEDULE_SECONDS * 1000);
  const to = new Date();
  await engine.stop();
  await kyselySql`update wombat.schedules set status = 'paused' where id = ${scheduleId}`.execute(tdb.db);
  await sleep(500);
  const rows = await tdb.sql<{ ms: number }[]>`
    select extract(epoch from started_at - scheduled_for)::float8 * 1000 as ms from wombat.runs
    where schedule_id = ${scheduleId} and scheduled_for >= ${from} and scheduled_for < ${to} and started_at is not null`;
  worker.child.send('stop');
  await worker.exited;
  await boss.stop({ graceful: false, close: true });
  return rows.map((r) => r.ms).sort((a, b) => a - b);
}

try {
  const drain1 = new Map<System, number[]>(SYSTEMS.map((s) => [s, []]));
  const drain2 = new Map<System, number[]>(SYSTEMS.map((s) => [s, []]));
  const pickup = new Map<System, number[]>(SYSTEMS.map((s) => [s, []]));
  const pickupP99 = new Map<System, number[]>(SYSTEMS.map((s) => [s, []]));
  const cpuNode = new Map<System, number[]>(SYSTEMS.map((s) => [s, []]));
  const cpuServer = new Map<System, number[]>(SYSTEMS.map((s) => [s, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = SYSTEMS.map((_, i) => SYSTEMS[(i + round) % SYSTEMS.length]!);
    if (ONLY.has('drain1') || ONLY.has('pickup')) {
      for (const s of order) {
        const r = await drainOneProcess(s, ONLY.has('pickup'));
        drain1.get(s)!.push(r.jobsPerSecond);
        cpuNode.get(s)!.push(r.cpu.node);
        if (r.cpu.server !== undefined) cpuServer.get(s)!.push(r.cpu.server);
        pickup.get(s)!.push(...r.latencies);
        pickupP99.get(s)!.push(pct(r.latencies.sort((a, b) => a - b), 99));
      }
    }
    if (ONLY.has('drain2')) for (const s of order) drain2.get(s)!.push(await drainTwoProcesses(s));
    console.error(`round ${round + 1}/${ROUNDS} done`);
  }
  const schedule = ONLY.has('schedule') ? await scheduleToHandler() : [];

  const graphile = 'graphile-worker';
  console.log(`worker drain benchmark: ${N} trivial jobs per drain, ${ROUNDS} interleaved rounds (order rotates), one PostgreSQL`);
  for (const line of describePeers()) console.log(`  ${line}`);
  console.log('  figures: median over rounds (min-max); ratio = jobs/s / graphile-worker jobs/s of the same round, median (min-max)');
  for (const [title, table] of [
    ['drain, 1 process', drain1],
    ['drain, 2 processes', drain2],
  ] as const) {
    if (table.get(graphile)!.length === 0) continue;
    console.log(title);
    for (const s of SYSTEMS) {
      const xs = table.get(s)!;
      const ratios = xs.map((x, i) => x / table.get(graphile)![i]!);
      console.log(`  ${s.padEnd(16)} ${int(median(xs)).padStart(7)} jobs/s (${range(xs, int)})   x graphile-worker ${median(ratios).toFixed(2)} (${range(ratios, (r) => r.toFixed(2))})`);
    }
  }
  if (cpuNode.get(graphile)!.length > 0) {
    // A drain on two cores is CPU-bound: jobs/s follows the CPU each job costs, in Node and in PostgreSQL.
    console.log('CPU per job, drain 1 process (median over rounds; Node: the draining process, PostgreSQL: its server processes)');
    for (const s of SYSTEMS) {
      const node = median(cpuNode.get(s)!);
      const server = cpuServer.get(s)!.length > 0 ? median(cpuServer.get(s)!) : undefined;
      const total = server === undefined ? 'n/a (server not on this host)' : `${ms(node + server)} us`;
      console.log(`  ${s.padEnd(16)} Node ${ms(node).padStart(6)} us   PostgreSQL ${server === undefined ? '   n/a' : ms(server).padStart(6)} us   total ${total}`);
    }
  }
  if (ONLY.has('pickup')) {
    console.log(`pickup, send -> handler start, idle drainer (${PROBES} probes per round, 20 ms apart)`);
    for (const s of SYSTEMS) {
      const xs = pickup.get(s)!.sort((a, b) => a - b);
      console.log(`  ${s.padEnd(16)} p50 ${ms(pct(xs, 50))} ms  p99 ${ms(pct(xs, 99))} ms  (per-round p99 ${range(pickupP99.get(s)!, ms)} ms)   aim p50 <= 5, p99 <= 10`);
    }
  }
  if (ONLY.has('schedule')) {
    console.log(
      `schedule instant -> handler start, every-second schedule (engine + worker process, ${schedule.length} runs in ${SCHEDULE_SECONDS}s): p50 ${ms(pct(schedule, 50))} ms  p99 ${ms(pct(schedule, 99))} ms  max ${ms(schedule.at(-1) ?? NaN)} ms   aim p50 <= 8, p99 <= 15`,
    );
  }
} finally {
  await producer.stop();
  for (const fn of teardowns.reverse()) await fn();
}
