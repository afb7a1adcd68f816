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
 * Also prints the CPU time each submission cost the api's event loop thread and the
 * PostgreSQL backends serving it (read from /proc, so only on Linux with a local
 * server; '-' otherwise): unlike latency, these hardly move with the machine's load.
 *
 * Every submission commits a NOTIFY (pg-boss wakes workers), and Postgres
 * serialises commits that notify, fsync included: under concurrency the WAL flush
 * is the queue. BENCH_SYNCHRONOUS_COMMIT=off measures the api with
 * `?synchronous_commit=off` on its DATABASE_URL (an operator's choice: a crash of
 * the database server can lose submissions acknowledged in the last ~0.6 s).
 */
import { readFileSync } from 'node:fs';
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

/** CPU time (user + system) of a process or thread from /proc, in ms; NaN when unreadable. */
function cpuMs(statPath: string): number {
  try {
    const fields = readFileSync(statPath, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function runClients(base: string, requests: number, mark: (clients: number, phase: 'start' | 'end') => Promise<void>): Promise<Level[]> {
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
    await mark(clients, 'start');
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
    await mark(clients, 'end');
    latencies.sort((a, b) => a - b);
    out.push({ clients, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1)!, perSecond: latencies.length / seconds });
  }
  return out;
}

if (!isMainThread) {
  const { base, requests } = workerData as { base: string; requests: number };
  const mark = (clients: number, phase: 'start' | 'end') =>
    new Promise<void>((resolve) => {
      parentPort!.once('message', () => resolve());
      parentPort!.postMessage({ mark: { clients, phase } });
    });
  parentPort!.postMessage({ levels: await runClients(base, requests, mark) });
} else if (!process.env.BENCH_ONLY || process.env.BENCH_ONLY.split(',').includes('submit')) {
  const { createDatabase, startBoss } = await import('@wombat/core/platform');
  const { migrateAll } = await import('@wombat/core/setup');
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
    // CPU of the api's event loop thread and of the backends of the bench database, at each level's start and end.
    const cpu = async () => {
      const pids = await database.sql<{ pid: number }[]>`select pid from pg_stat_activity where datname = current_database()`;
      return { api: cpuMs(`/proc/self/task/${process.pid}/stat`), pg: pids.reduce((sum, r) => sum + cpuMs(`/proc/${r.pid}/stat`), 0) };
    };
    const marks = new Map<number, { api: number; pg: number }>();
    const levels = await new Promise<Level[]>((resolve, reject) => {
      worker.on('message', (msg: { levels?: Level[]; mark?: { clients: number; phase: 'start' | 'end' } }) => {
        if (msg.levels) resolve(msg.levels);
        else if (msg.mark) {
          const { clients, phase } = msg.mark;
          void cpu().then((now) => {
            if (phase === 'start') marks.set(clients, now);
            else {
              const before = marks.get(clients)!;
              marks.set(clients, { api: (now.api - before.api) / requests, pg: (now.pg - before.pg) / requests });
            }
            worker.postMessage('go');
          }, reject);
        }
      });
      worker.once('error', reject);
    });
    await worker.terminate();
    console.log(`task submission latency, ${requests} requests per level (POST /api/tasks/canary -> 202, pool 10, synchronous_commit ${syncCommit})`);
    console.log('clients   p50 ms   p99 ms   max ms   req/s   CPU ms/req: api  PostgreSQL');
    const ms = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(2));
    for (const l of levels) {
      const used = marks.get(l.clients);
      console.log(
        [
          String(l.clients).padStart(7),
          l.p50.toFixed(2).padStart(8),
          l.p99.toFixed(2).padStart(8),
          l.max.toFixed(2).padStart(8),
          Math.round(l.perSecond).toString().padStart(7),
          ms(used?.api).padStart(16),
          ms(used?.pg).padStart(11),
        ].join(' '),
      );
    }
  } finally {
    for (const fn of teardowns.reverse()) await fn();
  }
}
