/**
 * A burst of a million (npm run bench:burst; also the last of the api's benchmarks, so npm run bench
 * runs it): the api, one scheduler-engine and 3 workers as processes on a database of their own. BENCH_BURST_TASKS canary
 * tasks (default 1,000,000) are submitted through POST /api/tasks/canary/batch, 1,000 per request
 * from BENCH_BURST_CLIENTS concurrent clients (default 4), with the workers stopped; then the 3
 * workers start and drain them. Prints the submission rate, the drain rate, and each service's
 * resident memory (RSS, from /proc) idle at the start, at its peak and idle again at the end.
 * Every task stays a run with its own id and full history: the bench checks at the end that
 * every run completed exactly once (one attempt) and that pg-boss agrees.
 *
 *   npm run bench:burst
 *   BENCH_BURST_TASKS=100000 BENCH_BURST_CLIENTS=8 npm run bench:burst
 *   BENCH_BURST_IDLE_S=30 (default): how long after the drain the 'end' RSS is read
 *
 * Asserts nothing about speed; exits 1 only when the runs and pg-boss disagree or a run did not
 * complete once.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { freePort } from '@wombat/core/platform';
import { createTestDatabase } from '@wombat/core/testing';
import { ADMIN_TOKEN, commonEnv, serviceEnv, startProcess, waitReady, type ServiceProcess } from './outage-harness.ts';

// Part of the api's benchmarks (npm run bench -w services/api): BENCH_ONLY=submit, dashboard or scale skips it.
if (process.env.BENCH_ONLY && !process.env.BENCH_ONLY.split(',').includes('burst')) process.exit(0);

const TASKS = Number(process.env.BENCH_BURST_TASKS ?? 1_000_000);
const CLIENTS = Number(process.env.BENCH_BURST_CLIENTS ?? 4);
const IDLE_S = Number(process.env.BENCH_BURST_IDLE_S ?? 30);
const WORKERS = 3;
const BATCH = 1000;
if (!(Number.isInteger(TASKS) && TASKS > 0) || !(Number.isInteger(CLIENTS) && CLIENTS > 0 && CLIENTS <= 64)) {
  console.error('BENCH_BURST_TASKS must be a whole number above 0 and BENCH_BURST_CLIENTS one from 1 to 64');
  process.exit(2);
}

/** Resident memory of a process in MiB, from /proc; NaN once it is gone. */
function rssMiB(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** A service's systemd unit: the node flags of its ExecStart and its Environment= settings. */
function unitOf(name: 'api' | 'scheduler-engine' | 'worker'): { nodeArgs: string[]; env: Record<string, string> } {
  const unit = readFileSync(path.join(import.meta.dirname, `../systemd/wombat-${name}.service`), 'utf8');
  const args = /^ExecStart=\S+ (.*)$/m.exec(unit)![1]!.split(' ');
  const env = Object.fromEntries([...unit.matchAll(/^Environment=(.*)$/gm)].flatMap((m) => m[1]!.split(' ').map((kv) => kv.split('=') as [string, string])));
  return { nodeArgs: args.filter((a) => a.startsWith('-')), env };
}

interface Memory {
  name: string;
  proc: ServiceProcess;
  start: number;
  peak: number;
  end: number;
}

const teardowns: (() => unknown)[] = [];
let failed = false;
try {
  const tdb = await createTestDatabase({ teardown: (fn) => teardowns.push(fn) }, { poolSize: 2 });
  const dataRoot = mkdtempSync(path.join(tmpdir(), 'wombat-burst-'));
  teardowns.push(() => rmSync(dataRoot, { recursive: true, force: true }));
  const common = commonEnv({ databaseUrl: tdb.url, dataRoot });
  const apiPort = await freePort();
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const procs: ServiceProcess[] = [];
  const start = (name: 'api' | 'scheduler-engine' | 'worker', env: Record<string, string> = {}) => {
    // As the systemd units run them: the built bundles (npm ci and npm run build make them), with
    // the units' node flags and environment.
    const unit = unitOf(name);
    const p = startProcess(name, { ...common, ...unit.env, ...serviceEnv(name, apiPort), ...env }, { main: `services/${name}/dist/main.mjs`, nodeArgs: unit.nodeArgs });
    procs.push(p);
    return p;
  };
  teardowns.push(async () => {
    for (const p of procs) if (p.alive()) p.child.kill('SIGTERM');
    await sleep(100);
    const until = Date.now() + 20_000;
    while (procs.some((p) => p.alive()) && Date.now() < until) await sleep(100);
    for (const p of procs) if (p.alive()) p.child.kill('SIGKILL');
  });
  // The engine runs no schedule here (ENABLE_SCHEDULER=false): it reconciles runs and runs
  // pg-boss's maintenance, as in production.
  const api = start('api');
  const engine = start('scheduler-engine', { ENABLE_SCHEDULER: 'false' });
  await Promise.all([waitReady(api, apiUrl), waitReady(engine, apiUrl)]);
  const memory: Memory[] = [];
  const watch = (name: string, proc: ServiceProcess) => {
    const rss = rssMiB(proc.child.pid);
    memory.push({ name, proc, start: rss, peak: rss, end: Number.NaN });
  };
  watch('api', api);
  watch('scheduler-engine', engine);
  const sampler = setInterval(() => {
    for (const m of memory) m.peak = Math.max(m.peak, rssMiB(m.proc.child.pid));
  }, 250);
  teardowns.push(() => clearInterval(sampler));

  // Submission: the workers are not running yet.
  const body = JSON.stringify({ tasks: Array.from({ length: BATCH }, () => ({ sleep_ms: 0 })) });
  let next = 0;
  let submitted = 0;
  const submitStarted = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < TASKS) {
        const n = Math.min(BATCH, TASKS - next);
        next += n;
        const res = await fetch(`${apiUrl}/api/tasks/canary/batch`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
          body: n === BATCH ? body : JSON.stringify({ tasks: Array.from({ length: n }, () => ({ sleep_ms: 0 })) }),
        });
        if (res.status !== 202) throw new Error(`batch answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
        submitted += ((await res.json()) as { count: number }).count;
      }
    }),
  );
  const submitSeconds = (performance.now() - submitStarted) / 1000;

  // Drain: 3 workers, each with the default loops and batch size.
  const workers = Array.from({ length: WORKERS }, () => start('worker', { WORKER_POLL_INTERVAL_SECONDS: '0.5' }));
  await Promise.all(workers.map((w) => waitReady(w, apiUrl)));
  workers.forEach((w, i) => watch(`worker-${i + 1}`, w));
  const drainStarted = performance.now();
  const unfinished = async () =>
    Number((await sql<{ n: string }>`select count(*) as n from wombat.runs where state in ('queued', 'running', 'retrying')`.execute(tdb.db)).rows[0]!.n);
  for (let left = await unfinished(); left > 0; left = await unfinished()) {
    if (!procs.every((p) => p.alive())) throw new Error('a service exited during the drain');
    await sleep(500);
  }
  const drainSeconds = (performance.now() - drainStarted) / 1000;
  // Idle again: what each process keeps once the work is done (V8 gives memory back a while after
  // the work stops, not at once).
  await sleep(IDLE_S * 1000);
  for (const m of memory) m.end = rssMiB(m.proc.child.pid);

  const runs = await sql<{ state: string; attempts: number; n: string }>`select state, attempts, count(*) as n from wombat.runs group by 1, 2`.execute(tdb.db);
  const jobs = await sql<{ state: string; n: string }>`select state::text, count(*) as n from pgboss.job where name = 'canary' group by 1`.execute(tdb.db);
  const completedOnce = runs.rows.filter((r) => r.state === 'completed' && r.attempts === 1).reduce((s, r) => s + Number(r.n), 0);
  const jobsCompleted = jobs.rows.filter((r) => r.state === 'completed').reduce((s, r) => s + Number(r.n), 0);
  const int = (x: number) => Math.round(x).toLocaleString('en-US');
  const mib = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
  const ratio = (x: number, base: number) => (Number.isFinite(x) && base > 0 ? `x${(x / base).toFixed(2)}` : '-');
  console.log(`burst: ${int(submitted)} canary tasks, ${CLIENTS} clients x batches of ${BATCH}, then ${WORKERS} workers (defaults), one PostgreSQL`);
  console.log(`  submission  ${int(submitted / submitSeconds)} tasks/s (${submitSeconds.toFixed(1)} s), each a run and a pg-boss job`);
  console.log(`  drain       ${int(TASKS / drainSeconds)} jobs/s (${drainSeconds.toFixed(1)} s) with ${WORKERS} workers, run history included`);
  console.log('  RSS (MiB)          start    peak     end   peak/start  end/start');
  for (const m of memory) {
    console.log(`  ${m.name.padEnd(17)} ${mib(m.start).padStart(6)} ${mib(m.peak).padStart(7)} ${mib(m.end).padStart(7)}   ${ratio(m.peak, m.start).padStart(9)}  ${ratio(m.end, m.start).padStart(9)}`);
  }
  console.log(`  runs completed once: ${int(completedOnce)} of ${int(TASKS)}; pg-boss jobs completed: ${int(jobsCompleted)}`);
  if (completedOnce !== TASKS || jobsCompleted !== TASKS) {
    console.error('burst: runs and pg-boss disagree, or a run took more than one attempt:', runs.rows, jobs.rows);
    const odd = await sql<{ state: string; retry_count: number; output: unknown; n: string }>`
      select j.state::text, j.retry_count, j.output, count(*) as n from pgboss.job j
      where j.name = 'canary' and j.state <> 'completed' group by 1, 2, 3 order by 4 desc limit 5`.execute(tdb.db);
    console.error('burst: jobs not completed, by outcome:', JSON.stringify(odd.rows));
    failed = true;
  }
} catch (err) {
  console.error('burst benchmark could not run:', err);
  failed = true;
} finally {
  for (const fn of teardowns.reverse()) await fn();
}
process.exit(failed ? 1 : 0);
