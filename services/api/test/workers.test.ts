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
  queues: ['canary', 'backtest'],
  concurrency: 3,
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
  t.match(byPid.get(1), { id: live.id, state: 'alive', host: 'box-1', queues: ['canary', 'backtest'], concurrency: 3, runs_in_hand: 2, rss_bytes: 123456789, stopped_at: null });
  t.match(byPid.get(2), { state: 'stale' });
  t.match(byPid.get(3), { state: 'stopped', stopped_at: String });

  const status = await api.call('GET', '/api/scheduler/status');
  t.equal(status.body.workers.alive, 1, 'the scheduler status shows the workers too');

  const metrics = await api.call('GET', '/metrics');
  t.match(metrics.body, /^wombat_worker_processes_live 1$/m);
  t.match(metrics.body, new RegExp(`^wombat_worker_rss_bytes\\{worker="${live.id}",host="box-1",pid="1"\\} 123456789$`, 'm'));
  t.match(metrics.body, new RegExp(`^wombat_worker_runs_in_hand\\{worker="${live.id}",host="box-1",pid="1"\\} 2$`, 'm'));
  t.notMatch(metrics.body, new RegExp(silent.id), 'a silent worker is not counted');
});

t.test('held and retrying runs are real states in the api, its OpenAPI enum and /metrics', async (t) => {
  const held = randomUUID();
  const retrying = randomUUID();
  await db
    .insertInto('wombat.runs')
    .values([
      { id: held, job: 'canary', trigger: 'schedule', state: 'held' },
      { id: retrying, job: 'backtest', trigger: 'task', state: 'retrying', attempts: 1 },
    ])
    .execute();
  const h = await api.call('GET', '/api/runs?state=held');
  t.equal(h.status, 200);
  t.same(h.body.runs.map((r: { id: string }) => r.id), [held]);
  const r = await api.call('GET', `/api/tasks/${retrying}`);
  t.equal(r.body.status, 'retrying');
  const bad = await api.call('GET', '/api/runs?state=waiting');
  t.equal(bad.status, 400);
  t.match(bad.body.error.message, /held, queued, running, retrying/);

  const doc = await api.call('GET', '/openapi.json');
  const stateParam = doc.body.paths['/api/runs'].get.parameters.find((p: { name: string }) => p.name === 'state');
  t.same(stateParam.schema.enum, [...RUN_STATES], 'the OpenAPI enum is RUN_STATES');
  t.ok(doc.body.paths['/api/workers'], 'GET /api/workers is in the OpenAPI document');

  const metrics = await api.call('GET', '/metrics');
  t.match(metrics.body, /^wombat_runs_active\{job="canary",state="held"\} 1$/m);
  t.match(metrics.body, /^wombat_runs_active\{job="backtest",state="retrying"\} 1$/m);
});
