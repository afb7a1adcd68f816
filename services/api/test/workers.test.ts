import t from 'tap';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { markWorkerStopped, registerWorker, type WorkerRegistration } from '@wombat/core/workers';
import { RUN_STATES } from '@wombat/core/runs';
import { startTestApi } from './helpers.ts';

const api = await startTestApi(t);
const db = api.database.db;

const worker = (over: Partial<WorkerRegistration> = {}): WorkerRegistration => ({
  id: randomUUID(),
  host: 'box-1',
  pid: 4242,
  version: '0.1.0',
  queueSettings: [
    { queue: 'canary', loops: 4, batchSize: 500 },
    { queue: 'backtest', loops: 2, batchSize: 1 },
  ],
  heartbeatIntervalMs: 1000,
  ...over,
});

t.test('no worker alive is visible in /api/workers, the status and /metrics', async (t) => {
  const res = await api.call('GET', '/api/workers');
  t.equal(res.status, 200);
  t.same(res.body, { alive: 0, workers: [] });
  const metrics = await api.call('GET', '/metrics');
  t.match(metrics.body, /^wombat_worker_processes_live 0$/m);
});

t.test('workers are listed alive, stale or stopped, with queues, runs in hand and memory', async (t) => {
  const live = worker({ pid: 1 });
  const silent = worker({ pid: 2 });
  const stopped = worker({ pid: 3 });
  for (const w of [live, silent, stopped]) await registerWorker(db, w);
  await sql`update wombat.workers set last_beat_at = now() - interval '10 seconds' where id = ${silent.id}`.execute(db);
  await markWorkerStopped(db, stopped.id);
  await sql`update wombat.workers set runs_in_hand = 2, rss_bytes = 123456789 where id = ${live.id}`.execute(db);

  const res = await api.call('GET', '/api/workers');
  t.equal(res.status, 200);
  t.equal(res.body.alive, 1);
  const byPid = new Map(res.body.workers.map((w: { pid: number }) => [w.pid, w]));
  t.match(byPid.get(1), { id: live.id, state: 'alive', host: 'box-1', queues: ['canary', 'backtest'], concurrency: 2002, runs_in_hand: 2, rss_bytes: 123456789, stopped_at: null });
  t.match(byPid.get(2), { state: 'stale' });
  t.match(byPid.get(3), { state: 'stopped', stopped_at: String });

  const status = await api.call('GET', '/api/scheduler/status');
  t.equal(status.body.workers.alive, 1, 'the scheduler status shows the workers too');
  t.same(status.body.workers.workers.find((w: { pid: number }) => w.pid === 1).queue_settings, (byPid.get(1) as { queue_settings: unknown }).queue_settings, 'with the same queue settings');

  const metrics = await api.call('GET', '/metrics');
  t.match(metrics.body, /^wombat_worker_processes_live 1$/m);
  t.match(metrics.body, new RegExp(`^wombat_worker_rss_bytes\\{worker="${live.id}",host="box-1",pid="1"\\} 123456789$`, 'm'));
  t.match(metrics.body, new RegExp(`^wombat_worker_runs_in_hand\\{worker="${live.id}",host="box-1",pid="1"\\} 2$`, 'm'));
  t.notMatch(metrics.body, new RegExp(silent.id), 'a silent worker is not counted');
});

t.test('each queue shows its fetch loops, batch size and the handlers it may run at once; the old total stays', async (t) => {
  const w = worker({ pid: 10 });
  await registerWorker(db, w);
  const res = await api.call('GET', '/api/workers');
  const shown = res.body.workers.find((x: { pid: number }) => x.pid === 10);
  t.same(shown.queue_settings, [
    { queue: 'canary', loops: 4, batch_size: 500, max_running: 2000 },
    { queue: 'backtest', loops: 2, batch_size: 1, max_running: 2 },
  ]);
  t.equal(shown.concurrency, 2002, 'concurrency is still the sum over the queues, for existing clients');

  // A row written by a worker from before the registry recorded queue settings.
  const old = randomUUID();
  await sql`insert into wombat.workers (id, host, pid, version, queues, concurrency, heartbeat_interval_ms) values (${old}, 'box-old', 11, '0.0.9', '{canary}', 8, 1000)`.execute(db);
  const again = await api.call('GET', '/api/workers');
  t.match(again.body.workers.find((x: { pid: number }) => x.pid === 11), { queues: ['canary'], concurrency: 8, queue_settings: null });

  const overview = await api.call('GET', '/api/overview');
  t.same(overview.body.workers.find((x: { pid: number }) => x.pid === 10).queue_settings, shown.queue_settings, 'the dashboard\'s overview shows the same');
  t.equal(overview.body.workers.find((x: { pid: number }) => x.pid === 11).queue_settings, null);

  const doc = await api.call('GET', '/openapi.json');
  const item = doc.body.paths['/api/workers'].get.responses['200'].content['application/json'].schema.properties.workers.items;
  t.match(item.properties.queue_settings, { type: 'array', nullable: true }, 'queue_settings is in the OpenAPI document');
  t.same(Object.keys(item.properties.queue_settings.items.properties), ['queue', 'loops', 'batch_size', 'max_running']);
});

t.test('waiting, held and retrying runs are real states in the api, its OpenAPI enum and /metrics', async (t) => {
  const held = randomUUID();
  const waiting = randomUUID();
  const retrying = randomUUID();
  await db
    .insertInto('wombat.runs')
    .values([
      { id: held, job: 'canary', trigger: 'schedule', state: 'held' },
      { id: waiting, job: 'canary', trigger: 'schedule', state: 'waiting', reason: 'waits for collect-symbols (after)' },
      { id: retrying, job: 'backtest', trigger: 'task', state: 'retrying', attempts: 1 },
    ])
    .execute();
  const h = await api.call('GET', '/api/runs?state=held');
  t.equal(h.status, 200);
  t.same(h.body.runs.map((r: { id: string }) => r.id), [held]);
  const r = await api.call('GET', `/api/tasks/${retrying}`);
  t.equal(r.body.status, 'retrying');
  const w = await api.call('GET', '/api/runs?state=waiting');
  t.same(w.body.runs.map((r: { id: string; reason: string }) => [r.id, r.reason]), [[waiting, 'waits for collect-symbols (after)']]);
  const bad = await api.call('GET', '/api/runs?state=pending');
  t.equal(bad.status, 400);
  t.match(bad.body.error.message, /waiting, held, queued, running, retrying/);

  const doc = await api.call('GET', '/openapi.json');
  const stateParam = doc.body.paths['/api/runs'].get.parameters.find((p: { name: string }) => p.name === 'state');
  t.same(stateParam.schema.enum, [...RUN_STATES], 'the OpenAPI enum is RUN_STATES');
  t.ok(doc.body.paths['/api/workers'], 'GET /api/workers is in the OpenAPI document');

  const metrics = await api.call('GET', '/metrics');
  t.match(metrics.body, /^wombat_runs_active\{job="canary",state="held"\} 1$/m);
  t.match(metrics.body, /^wombat_runs_active\{job="canary",state="waiting"\} 1$/m);
  t.match(metrics.body, /^wombat_runs_active\{job="backtest",state="retrying"\} 1$/m);
});
