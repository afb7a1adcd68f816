import t from 'tap';
import { backtestParams, startTestApi } from './helpers.ts';

const api = await startTestApi(t);
const { db } = api.database;

/** What a worker records when a job's last attempt fails. */
async function failRun(id: string, finishedAt: Date, message = 'exchange said no') {
  await db
    .updateTable('wombat.runs')
    .set({ state: 'failed', started_at: new Date(finishedAt.getTime() - 1500), finished_at: finishedAt, attempts: 3, error: { name: 'Error', message } })
    .where('id', '=', id)
    .execute();
}

async function submit(job = 'canary', body: unknown = {}): Promise<string> {
  const res = await api.call('POST', `/api/tasks/${job}`, { body });
  return res.body.task_id;
}

t.test('run history filters by job, state and time, pages, and shows lateness and duration', async (t) => {
  const a = await submit();
  const b = await submit('backtest', backtestParams);
  const scheduled = new Date(Date.now() - 60_000);
  await db
    .updateTable('wombat.runs')
    .set({ state: 'completed', scheduled_for: scheduled, started_at: new Date(scheduled.getTime() + 250), finished_at: new Date(scheduled.getTime() + 1250), attempts: 1 })
    .where('id', '=', a)
    .execute();
  const completed = await api.call('GET', '/api/runs?state=completed&job=canary');
  t.equal(completed.status, 200);
  t.same(completed.body.runs.map((r: { id: string }) => r.id), [a]);
  t.match(completed.body.runs[0], { start_lateness_ms: 250, duration_ms: 1000, attempts: 1 });
  const page = await api.call('GET', '/api/runs?limit=1');
  t.equal(page.body.runs.length, 1);
  t.equal(page.body.runs[0].id, b, 'newest first');
  t.ok(page.body.total >= 2);
  const second = await api.call('GET', '/api/runs?limit=1&offset=1');
  t.equal(second.body.runs[0].id, a);
  const future = await api.call('GET', `/api/runs?since=${new Date(Date.now() + 3_600_000).toISOString()}`);
  t.same(future.body.runs, []);
  const one = await api.call('GET', `/api/runs/${b}`);
  t.match(one.body, { id: b, job: 'backtest', params: backtestParams, state: 'queued' });
  t.equal((await api.call('GET', '/api/runs/00000000-0000-4000-8000-000000000000')).status, 404);
  t.equal((await api.call('GET', '/api/runs?state=exploded')).status, 400);
});

t.test('failed runs are dead letters until requeued; requeue publishes a new run', async (t) => {
  const id = await submit('backtest', backtestParams);
  await failRun(id, new Date());
  const list = await api.call('GET', '/api/dead-letters?job=backtest');
  t.equal(list.status, 200);
  const dl = list.body.dead_letters.find((r: { id: string }) => r.id === id);
  t.match(dl, { state: 'failed', error: { message: 'exchange said no' }, attempts: 3 });
  const inspect = await api.call('GET', `/api/runs/${id}`);
  t.match(inspect.body.error, { message: 'exchange said no' });

  const requeued = await api.call('POST', `/api/dead-letters/${id}/requeue`);
  t.equal(requeued.status, 202);
  const newId = requeued.body.task_id;
  const fresh = await api.call('GET', `/api/runs/${newId}`);
  t.match(fresh.body, { job: 'backtest', params: backtestParams, state: 'queued', retry_of: id, trigger: 'manual' });
  const after = await api.call('GET', '/api/dead-letters?job=backtest');
  t.notOk(after.body.dead_letters.some((r: { id: string }) => r.id === id), 'a requeued run leaves the dead letters');
  t.equal((await api.call('POST', `/api/dead-letters/${id}/requeue`)).status, 409);
  t.equal((await api.call('POST', `/api/dead-letters/${newId}/requeue`)).status, 409, 'a queued run is not a dead letter');
  t.equal((await api.call('POST', '/api/dead-letters/00000000-0000-4000-8000-000000000000/requeue')).status, 404);
});

t.test('requeue some by id, or all of a job, in one call', async (t) => {
  const ids = [await submit('collect-symbols'), await submit('collect-symbols'), await submit('collect-symbols')];
  for (const id of ids) await failRun(id, new Date());
  const some = await api.call('POST', '/api/dead-letters/requeue', { body: { ids: [ids[0], '00000000-0000-4000-8000-000000000000'] } });
  t.equal(some.status, 202);
  t.equal(some.body.count, 1);
  t.equal(some.body.requeued[0].id, ids[0]);
  t.equal(some.body.not_requeued.length, 1);
  const all = await api.call('POST', '/api/dead-letters/requeue', { body: { all: true, job: 'collect-symbols' } });
  t.equal(all.status, 202);
  t.same(all.body.requeued.map((r: { id: string }) => r.id).sort(), [ids[1], ids[2]].sort());
  const none = await api.call('POST', '/api/dead-letters/requeue', { body: {} });
  t.equal(none.status, 400);
  t.match(none.body.error.message, /ids/);
});

t.test('purge deletes only dead letters older than the age given', async (t) => {
  const old = await submit('fetch-candles', { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D' });
  const recent = await submit('fetch-candles', { exchange: 'upbit', symbol: 'KRW-ETH', timeframe: '1D' });
  await failRun(old, new Date(Date.now() - 3 * 86_400_000));
  await failRun(recent, new Date());
  const res = await api.call('POST', '/api/dead-letters/purge', { body: { older_than_hours: 48, job: 'fetch-candles' } });
  t.equal(res.status, 200);
  t.equal(res.body.purged, 1);
  t.equal((await api.call('GET', `/api/runs/${old}`)).status, 404);
  t.equal((await api.call('GET', `/api/runs/${recent}`)).status, 200);
  t.equal((await api.call('POST', '/api/dead-letters/purge', { body: {} })).status, 400);
});

t.test('metrics report queues, running jobs, failures, durations and dead letters in Prometheus format', async (t) => {
  // The duration histogram counts a run once its finish has settled (10 s): these finished 30 s ago.
  await db
    .updateTable('wombat.runs')
    .set({ started_at: new Date(Date.now() - 31_500), finished_at: new Date(Date.now() - 30_000) })
    .where('job', '=', 'backtest')
    .where('state', '=', 'failed')
    .execute();
  const res = await api.call('GET', '/metrics');
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /text\/plain/);
  const text = res.body as string;
  t.match(text, /# TYPE wombat_queue_depth gauge/);
  t.match(text, /wombat_queue_depth\{queue="backtest"\} [1-9]/);
  t.match(text, /wombat_runs_running\{job="canary"\} 0/);
  t.match(text, /wombat_run_failure_ratio\{job="collect-symbols"\} 1/);
  t.match(text, /wombat_run_duration_seconds_bucket\{job="backtest",le="5"\} [1-9]/);
  t.match(text, /wombat_run_duration_seconds_count\{job="canary"\} 1/);
  t.match(text, /wombat_dead_letters \d+/);
  t.match(text, /# TYPE wombat_engine_heartbeat_age_seconds gauge/);
  const malformed = text
    .trim()
    .split('\n')
    // Blank lines between families are allowed by the text format.
    .filter((line) => line !== '' && !line.startsWith('#') && !/^[a-z_]+(\{[^}]*\})? [-+0-9.eInfNa]+$/.test(line));
  t.same(malformed, [], 'every sample line is well formed');
});


t.test('health answers 200 with the database status', async (t) => {
  const res = await api.call('GET', '/health', { token: null });
  t.equal(res.status, 200);
  t.match(res.body, { status: 'ok', database: { ok: true, latency_ms: Number } });
});

t.test('a run shows the writes of its superseded attempts apart from its outcome', async (t) => {
  const { applyAttemptUpdates } = await import('@wombat/core/runs');
  const id = await submit();
  const fresh = await api.call('GET', `/api/runs/${id}`);
  t.same(fresh.body.superseded_attempts, [], 'none yet');
  // A worker whose attempt never held the job's claim (nobody fetched it) writes a completion: refused.
  const refused = await applyAttemptUpdates(api.database.sql, [{ id, attempts: 1, workerId: '00000000-0000-4000-8000-000000000001', state: 'completed', result: { late: true }, finishedAt: new Date().toISOString() }]);
  t.same([...refused.superseded], [id]);
  const res = await api.call('GET', `/api/runs/${id}`);
  t.equal(res.status, 200);
  t.equal(res.body.state, 'queued', 'the run keeps its own state');
  t.match(res.body.superseded_attempts, [{ attempt: 1, state: 'completed', worker_id: '00000000-0000-4000-8000-000000000001' }]);
});
