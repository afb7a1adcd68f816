/**
 * Drain throughput and pickup latency of the worker, against raw pg-boss measured in the same run.
 *
 *   npm run bench -w services/worker          (BENCH_JOBS=20000 BENCH_LATENCY_JOBS=300 BENCH_LOOPS=2)
 *
 * drain: N trivial jobs are queued first, then a worker empties the queue. Wombat runs canaries
 * with run history (each run's start, completion and latency recorded, in batched writes); the baseline is raw pg-boss
 * with the same fetch settings (2 loops x batch 500, LISTEN/NOTIFY, burst) and no history.
 * pickup: jobs sent one at a time to an idle worker; latency = send (the run's scheduled instant)
 * -> handler start.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { fromKysely, jobDefaults, startBoss, type PgBoss, publishRun, type Job } from '@wombat/core';
import { createTestDatabase, type TestDatabase } from '@wombat/core/testing';
import { createWorker } from '../src/index.ts';

const N = Number(process.env.BENCH_JOBS ?? 20_000);
const LATENCY_JOBS = Number(process.env.BENCH_LATENCY_JOBS ?? 300);
// The worker's default for canary: 2 fetch loops of 500.
const LOOPS = Number(process.env.BENCH_LOOPS ?? 2);
const BATCH = 500;

const teardowns: (() => unknown)[] = [];
const tdb = await createTestDatabase({ teardown: (fn) => teardowns.push(fn) }, { poolSize: 6 });
const producer = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 4 });

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const fmt = (ms: number) => `${ms.toFixed(1)} ms`;

async function analyze(db: TestDatabase): Promise<void> {
  // A sudden fill leaves the planner with stale statistics and the fetch query 10x slower.
  await db.sql`analyze pgboss.job`;
  await db.sql`analyze wombat.runs`;
}

// ---- baseline: raw pg-boss
async function baseline(): Promise<{ jobsPerSecond: number; p50: number; p99: number }> {
  const queue = 'bench-raw';
  await producer.createQueue(queue, { notify: true, retryLimit: 0 });
  for (let i = 0; i < N; i += 5000) await producer.insert(queue, Array.from({ length: Math.min(5000, N - i) }, () => ({ data: { sentAt: 0 } })));
  await analyze(tdb);
  const boss = await startBoss({ url: tdb.url, role: 'worker', log: tdb.log, poolSize: 4 });
  let done = 0;
  let measuring = false;
  const latencies: number[] = [];
  let finish!: () => void;
  const drained = new Promise<void>((r) => (finish = r));
  const started = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < LOOPS; i++) {
    let id = '';
    id = await boss.work(
      queue,
      { batchSize: BATCH, burstWhenBatchFull: true, pollingIntervalSeconds: 2, notifyPollingIntervalSeconds: 2 },
      async (jobs: Job<{ sentAt: number }>[]): Promise<void> => {
        const now = Date.now();
        if (measuring) for (const j of jobs) latencies.push(now - j.data.sentAt);
        done += jobs.length;
        if (done >= N && !measuring) finish();
        boss.notifyWorker(id);
      },
    );
    ids.push(id);
  }
  await drained;
  const seconds = (performance.now() - started) / 1000;
  measuring = true;
  for (let i = 0; i < LATENCY_JOBS; i++) {
    await producer.send(queue, { sentAt: Date.now() });
    await sleep(5);
  }
  while (latencies.length < LATENCY_JOBS) await sleep(10);
  await boss.stop({ graceful: true, close: true });
  latencies.sort((a, b) => a - b);
  return { jobsPerSecond: N / seconds, p50: pct(latencies, 50), p99: pct(latencies, 99) };
}

// ---- Wombat: canaries with run history
async function wombat(): Promise<{ jobsPerSecond: number; p50: number; p99: number }> {
  const d = jobDefaults.canary;
  for (let i = 0; i < N; i += 5000) {
    const ids = Array.from({ length: Math.min(5000, N - i) }, () => randomUUID());
    await tdb.db.transaction().execute(async (trx) => {
      await trx.insertInto('wombat.runs').values(ids.map((id) => ({ id, job: 'canary', trigger: 'script' as const, params: {}, published_at: new Date(), scheduled_for: new Date() }))).execute();
      await producer.insert('canary', ids.map((id) => ({ id, data: {}, expireInSeconds: d.timeoutSeconds, retryLimit: d.retryLimit })), { db: fromKysely(trx) });
    });
  }
  await analyze(tdb);
  const boss: PgBoss = await startBoss({ url: tdb.url, role: 'worker', log: tdb.log, poolSize: 4 });
  const worker = createWorker({ db: tdb.db, sql: tdb.sql, boss, log: tdb.log, queues: new Map([['canary', { workers: LOOPS, batchSize: BATCH }]]) });
  const started = performance.now();
  await worker.start();
  for (;;) {
    // Cheap: the partial index on active runs is empty once every canary is recorded.
    const rows = await tdb.sql`select 1 from wombat.runs where state in ('queued', 'running') limit 1`;
    if (rows.length === 0) break;
    await sleep(5);
  }
  const seconds = (performance.now() - started) / 1000;
  const ids: string[] = [];
  for (let i = 0; i < LATENCY_JOBS; i++) {
    ids.push(await publishRun(tdb.db, producer, { job: 'canary', params: {}, trigger: 'script' }));
    await sleep(5);
  }
  let latencies: number[] = [];
  for (;;) {
    const rows = await tdb.sql`select (result->>'latencyMs')::float8 as ms from wombat.runs where id = any(${ids}::uuid[]) and state = 'completed'`;
    if (rows.length >= LATENCY_JOBS) {
      latencies = rows.map((r) => r.ms as number).sort((a, b) => a - b);
      break;
    }
    await sleep(20);
  }
  await worker.stop();
  await boss.stop({ graceful: true, close: true });
  return { jobsPerSecond: N / seconds, p50: pct(latencies, 50), p99: pct(latencies, 99) };
}

try {
  const raw = await baseline();
  const ours = await wombat();
  console.log(`worker drain: ${N} trivial jobs, ${LOOPS} fetch loops x batch ${BATCH}, LISTEN/NOTIFY`);
  console.log(`  raw pg-boss (no history)    ${Math.round(raw.jobsPerSecond).toString().padStart(7)} jobs/s   pickup p50 ${fmt(raw.p50)}  p99 ${fmt(raw.p99)}`);
  console.log(`  wombat canary (run history) ${Math.round(ours.jobsPerSecond).toString().padStart(7)} jobs/s   pickup p50 ${fmt(ours.p50)}  p99 ${fmt(ours.p99)}`);
  console.log(`  ratio ${(ours.jobsPerSecond / raw.jobsPerSecond).toFixed(2)} (aims: >= 23k jobs/s; pickup p50 <= 10 ms, p99 <= 25 ms)`);
} finally {
  await producer.stop({ graceful: false, close: true });
  for (const fn of teardowns.reverse()) await fn();
}
