/**
 * Task submission latency: POST /api/tasks/canary over real HTTP against the api
 * on a database of its own, at 1, 10 and 100 concurrent clients. The clients run
 * in a worker thread so that they do not share the server's event loop. Prints
 * p50/p99 per level; asserts nothing.
 *
 *   npm run bench -w services/api          (embedded PostgreSQL unless DATABASE_URL is set)
 *   BENCH_REQUESTS=5000 npm run bench -w services/api
 *   BENCH_SYNCHRONOUS_COMMIT=off npm run bench -w services/api
 *   BENCH_ONLY=submit BENCH_CLIENTS=10 npm run bench -w services/api   (this bench alone, 10 clients only)
 *
 * Every submission commits a NOTIFY (pg-boss wakes workers), and Postgres
 * serialises commits that notify, fsync included: under concurrency the WAL flush
 * is the queue. BENCH_SYNCHRONOUS_COMMIT=off measures the api with
 * `?synchronous_commit=off` on its DATABASE_URL (an operator's choice: a crash of
 * the database server can lose submissions acknowledged in the last ~0.6 s).
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const TOKEN = 'bench-admin-token-0123456789abcdef';
const LEVELS = (process.env.BENCH_CLIENTS ?? '1,10,100').split(',').map(Number);

interface Level {
  clients: number;
  p50: number;
  p99: number;
  max: number;
  perSecond: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function runClients(base: string, requests: number): Promise<Level[]> {
  const submit = async (): Promise<number> => {
    const started = performance.now();
    const res = await fetch(`${base}/api/tasks/canary`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    await res.arrayBuffer();
    if (res.status !== 202) throw new Error(`submission answered ${res.status}`);
    return performance.now() - started;
  };
  // Warm up connections, prepared plans and the JIT before measuring.
  await Promise.all(Array.from({ length: 100 }, () => submit()));
  const out: Level[] = [];
  for (const clients of LEVELS) {
    const latencies: number[] = [];
    let issued = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (issued < requests) {
          issued++;
          latencies.push(await submit());
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    out.push({ clients, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1)!, perSecond: latencies.length / seconds });
  }
  return out;
}

if (!isMainThread) {
  const { base, requests } = workerData as { base: string; requests: number };
  parentPort!.postMessage(await runClients(base, requests));
} else if (!process.env.BENCH_ONLY || process.env.BENCH_ONLY.split(',').includes('submit')) {
  const { createDatabase, migrateAll, startBoss } = await import('@wombat/core');
  const { createEmptyTestDatabase, testLogger } = await import('@wombat/core/testing');
  const { buildApp } = await import('../src/app.ts');
  const requests = Number(process.env.BENCH_REQUESTS ?? 3000);
  const teardowns: (() => unknown)[] = [];
  try {
    const { url } = await createEmptyTestDatabase({ teardown: (fn: () => unknown) => void teardowns.push(fn) }, 'wombat_bench');
    const log = testLogger('bench');
    await migrateAll({ url, log });
    const syncCommit = process.env.BENCH_SYNCHRONOUS_COMMIT === 'off' ? 'off' : 'on';
    const apiUrl = syncCommit === 'off' ? `${url}?synchronous_commit=off` : url;
    const database = createDatabase({ url: apiUrl, poolSize: 10, applicationName: 'wombat-bench' });
    teardowns.push(() => database.close());
    const boss = await startBoss({ url, role: 'producer', log, poolSize: 4 });
    teardowns.push(() => boss.stop({ graceful: false, close: true }));
    const app = await buildApp({ db: database.db, sql: database.sql, boss, log, auth: { adminToken: TOKEN, reads: 'open' }, taskResultTtlDays: 7 });
    teardowns.push(() => app.close());
    const base = await app.listen({ host: '127.0.0.1', port: 0 });

    const worker = new Worker(new URL(import.meta.url), { workerData: { base, requests } });
    const levels = await new Promise<Level[]>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    console.log(`task submission latency, ${requests} requests per level (POST /api/tasks/canary -> 202, pool 10, synchronous_commit ${syncCommit})`);
    console.log('clients   p50 ms   p99 ms   max ms   req/s');
    for (const l of levels) {
      console.log(
        [String(l.clients).padStart(7), l.p50.toFixed(2).padStart(8), l.p99.toFixed(2).padStart(8), l.max.toFixed(2).padStart(8), Math.round(l.perSecond).toString().padStart(7)].join(' '),
      );
    }
  } finally {
    for (const fn of teardowns.reverse()) await fn();
  }
}
