/**
 * The three job runners the drain benchmark compares, each behind the same small interface:
 * fill a queue with N trivial jobs, start a drainer (in this process or in a child), tell when the
 * queue is empty, and send one job for a pickup measurement.
 *
 * - wombat: the worker's public API (createWorker) running canaries with run history; jobs are
 *   published with the run rows, as every Wombat job is.
 * - pg-boss: raw pg-boss with batch fetch, LISTEN/NOTIFY and burst, no history.
 * - graphile-worker: its documented high-throughput settings (local queue of 500, batched
 *   completion, 24 concurrent jobs), as in its own performance test.
 */
import { Logger as GraphileLogger, makeWorkerUtils, run as runGraphile, runMigrations, type Runner, type WorkerUtils } from 'graphile-worker';
import { createDatabase, startBoss, type Job, type Logger, type PgBoss, type Sql } from '@wombat/core/platform';
import { insertRunsAndSend, publishRun } from '@wombat/core/runs';
import type { Kysely } from 'kysely';
import type { CoreTables } from '@wombat/core/tables';
import { createWorker, defaultQueueSettings } from '../src/index.ts';

export const SYSTEMS = ['wombat', 'pg-boss', 'graphile-worker'] as const;
export type System = (typeof SYSTEMS)[number];

/** pg-boss's fetch settings: the baseline is 4 loops x 500. */
export const RAW_LOOPS = Number(process.env.BENCH_RAW_LOOPS ?? 4);
export const RAW_BATCH = 500;
export const RAW_QUEUE = 'bench-raw';
/** graphile-worker: concurrency and local queue size (its perfTest uses 24 and 500). */
export const GRAPHILE_CONCURRENCY = Number(process.env.BENCH_GRAPHILE_CONCURRENCY ?? 24);
export const GRAPHILE_LOCAL_QUEUE = Number(process.env.BENCH_GRAPHILE_LOCAL_QUEUE ?? 500);
export const GRAPHILE_TASK = 'bench';

export function describePeers(): string[] {
  const c = defaultQueueSettings.canary;
  return [
    `wombat: canary with run history, worker defaults (${c.workers} fetch loops x batch ${c.batchSize}), LISTEN/NOTIFY`,
    `pg-boss: raw, no history, ${RAW_LOOPS} loops x batch ${RAW_BATCH}, LISTEN/NOTIFY, burstWhenBatchFull`,
    `graphile-worker: concurrency ${GRAPHILE_CONCURRENCY}, localQueue ${GRAPHILE_LOCAL_QUEUE}, completeJobBatchDelay 0`,
  ];
}

/** Called with the latency (ms, send -> handler start) of jobs sent by `sendOne`. */
export type OnPickup = (ms: number) => void;

export interface Drainer {
  stop(): Promise<void>;
}

const quietGraphileLogger = new GraphileLogger(() => () => {});

function graphileOptions(url: string, onPickup?: OnPickup) {
  return {
    connectionString: url,
    concurrency: GRAPHILE_CONCURRENCY,
    maxPoolSize: GRAPHILE_CONCURRENCY + 1,
    noHandleSignals: true,
    pollInterval: 2000,
    logger: quietGraphileLogger,
    preset: { worker: { localQueue: { size: GRAPHILE_LOCAL_QUEUE }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
    taskList: {
      [GRAPHILE_TASK]: async (payload: unknown) => {
        const sentAt = (payload as { sentAt?: number }).sentAt;
        if (onPickup && sentAt) onPickup(Date.now() - sentAt);
      },
    },
  };
}

/** Starts a drainer of `system` in this process; `onPickup` sees each latency-probe job (pg-boss, graphile-worker). */
export async function startDrainer(system: System, url: string, log: Logger, onPickup?: OnPickup): Promise<Drainer> {
  if (system === 'wombat') {
    const database = createDatabase({ url, poolSize: 6, applicationName: 'wombat-bench-worker' });
    const boss = await startBoss({ url, role: 'worker', log, poolSize: 4 });
    const worker = createWorker({ db: database.db, sql: database.sql, boss, log, queues: new Map([['canary', defaultQueueSettings.canary]]) });
    await worker.start();
    return {
      async stop() {
        await worker.stop();
        await boss.stop({ graceful: true, close: true });
        await database.close();
      },
    };
  }
  if (system === 'pg-boss') {
    const boss = await startBoss({ url, role: 'worker', log, poolSize: 4 });
    for (let i = 0; i < RAW_LOOPS; i++) {
      let id = '';
      id = await boss.work(
        RAW_QUEUE,
        { batchSize: RAW_BATCH, burstWhenBatchFull: true, pollingIntervalSeconds: 2, notifyPollingIntervalSeconds: 2 },
        async (jobs: Job<{ sentAt?: number }>[]): Promise<void> => {
          const now = Date.now();
          if (onPickup) for (const j of jobs) if (j.data.sentAt) onPickup(now - j.data.sentAt);
          boss.notifyWorker(id);
        },
      );
    }
    return { stop: () => boss.stop({ graceful: true, close: true }) };
  }
  const runner: Runner = await runGraphile(graphileOptions(url, onPickup));
  return {
    async stop() {
      await runner.stop();
      await runner.promise;
    },
  };
}

/** What the benchmark's own process uses to fill queues, probe pickup and tell when a queue is empty. */
export interface Producer {
  fill(system: System, n: number): Promise<void>;
  /** True when every job of the system's queue has finished (for Wombat: its run is recorded finished). */
  empty(system: System): Promise<boolean>;
  /** Sends one probe job; for Wombat returns the run id (its latency is read from the run row). */
  sendOne(system: System): Promise<string | undefined>;
  /** Wombat's probe latencies, from the run rows: scheduled_for -> started_at. */
  wombatLatencies(ids: string[]): Promise<number[] | undefined>;
  stop(): Promise<void>;
}

export async function startProducer(db: Kysely<CoreTables>, sql: Sql, url: string, log: Logger): Promise<Producer> {
  const boss: PgBoss = await startBoss({ url, role: 'producer', log, poolSize: 4 });
  await boss.createQueue(RAW_QUEUE, { notify: true, retryLimit: 0 });
  await runMigrations(graphileOptions(url));
  const graphile: WorkerUtils = await makeWorkerUtils({ connectionString: url, logger: quietGraphileLogger });
  const CHUNK = 5000;

  async function analyze(): Promise<void> {
    // A sudden fill leaves the planner with stale statistics and the fetch queries 10x slower.
    await sql`analyze pgboss.job`;
    await sql`analyze wombat.runs`;
    await sql`analyze graphile_worker._private_jobs`;
  }

  return {
    async fill(system, n) {
      for (let i = 0; i < n; i += CHUNK) {
        const count = Math.min(CHUNK, n - i);
        if (system === 'wombat') {
          await db.transaction().execute((trx) => insertRunsAndSend(trx, boss, Array.from({ length: count }, () => ({ job: 'canary' as const, params: {}, trigger: 'script' as const }))));
        } else if (system === 'pg-boss') {
          await boss.insert(RAW_QUEUE, Array.from({ length: count }, () => ({ data: {} })));
        } else {
          await graphile.addJobs(Array.from({ length: count }, () => ({ identifier: GRAPHILE_TASK, payload: {} })));
        }
      }
      await analyze();
    },
    async empty(system) {
      const rows =
        system === 'wombat'
          ? // Cheap: the partial index on active runs is empty once every canary is recorded.
            await sql`select 1 from wombat.runs where state in ('queued', 'running') limit 1`
          : system === 'pg-boss'
            ? await sql`select 1 from pgboss.job where name = ${RAW_QUEUE} and state < 'completed' limit 1`
            : // graphile-worker deletes a job when it completes.
              await sql`select 1 from graphile_worker._private_jobs limit 1`;
      return rows.length === 0;
    },
    async sendOne(system) {
      if (system === 'wombat') return publishRun(db, boss, { job: 'canary', params: {}, trigger: 'script' });
      if (system === 'pg-boss') await boss.send(RAW_QUEUE, { sentAt: Date.now() });
      else await graphile.addJob(GRAPHILE_TASK, { sentAt: Date.now() });
      return undefined;
    },
    async wombatLatencies(ids) {
      // scheduled_for is the publishing transaction's now(); started_at the handler's start.
      const rows = await sql<{ ms: number }[]>`
        select extract(epoch from started_at - scheduled_for)::float8 * 1000 as ms
        from wombat.runs where id = any(${ids}::uuid[]) and started_at is not null and state = 'completed'`;
      return rows.length >= ids.length ? rows.map((r) => r.ms) : undefined;
    },
    async stop() {
      await graphile.release();
      await boss.stop({ graceful: false, close: true });
    },
  };
}
