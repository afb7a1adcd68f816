import { listWorkers, workerView } from '@wombat/core/workers';
import Type from 'typebox';
import type { App, AppDeps } from '../deps.ts';

const time = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);

export const WorkerSchema = Type.Object({
  id: Type.String({ description: 'worker process id (recorded on the runs it starts)' }),
  host: Type.String(),
  pid: Type.Integer(),
  version: Type.String(),
  state: Type.Union([Type.Literal('alive'), Type.Literal('stale'), Type.Literal('stopped')], {
    description: 'alive (heartbeat within 3 intervals), stale (heartbeat stopped: its runs are ended as lost) or stopped (shut down cleanly)',
  }),
  queues: Type.Array(Type.String()),
  concurrency: Type.Integer({ description: 'handlers this process may run at once over all its queues: loops x batch_size, summed (see queue_settings)' }),
  queue_settings: Type.Union(
    [
      Type.Array(
        Type.Object({
          queue: Type.String(),
          loops: Type.Integer({ description: 'fetch loops on this queue (WORKER_CONCURRENCY)' }),
          batch_size: Type.Integer({ description: 'jobs a loop fetches at once and runs together (WORKER_BATCH_SIZE)' }),
          max_running: Type.Integer({ description: 'handlers of this queue that may run at once: loops x batch_size' }),
        }),
      ),
      Type.Null(),
    ],
    { description: 'per queue, in the order of queues; null for a worker of a version that did not record them' },
  ),
  runs_in_hand: Type.Integer({ description: 'jobs running at the last heartbeat' }),
  rss_bytes: Type.Integer({ description: 'resident memory at the last heartbeat' }),
  started_at: Type.String({ format: 'date-time' }),
  last_heartbeat: Type.String({ format: 'date-time' }),
  heartbeat_age_seconds: Type.Number(),
  heartbeat_interval_ms: Type.Integer(),
  stopped_at: time,
});

export const WorkersSchema = Type.Object({
  alive: Type.Integer({ description: 'live workers; 0 means nothing runs jobs' }),
  workers: Type.Array(WorkerSchema, { description: 'live workers and those gone within the last day, newest heartbeat first' }),
});

export async function workersBody(deps: AppDeps) {
  const workers = await listWorkers(deps.db);
  const now = new Date();
  return { alive: workers.filter((w) => w.alive).length, workers: workers.map((w) => workerView(w, now)) };
}

export function workerRoutes(app: App, deps: AppDeps): void {
  app.get(
    '/api/workers',
    { schema: { summary: 'worker processes: live ones and those gone within the last day, with queues, runs in hand and memory', tags: ['scheduler'], response: { 200: WorkersSchema } } },
    async () => workersBody(deps),
  );
}
