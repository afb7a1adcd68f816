import { createSql } from '@wombat/core/platform';
import { CANCEL_CHANNEL } from '@wombat/core/jobs';
import t from 'tap';
import { backtestParams, startTestApi } from './helpers.ts';

const api = await startTestApi(t);
const { db } = api.database;

async function pgbossState(id: string): Promise<string | undefined> {
  const rows = await api.database.sql<{ state: string }[]>`select state::text from pgboss.job where id = ${id}`;
  return rows[0]?.state;
}

t.test('submitting a task answers 202 with a queued run that is also a pg-boss job', async (t) => {
  const res = await api.call('POST', '/api/tasks/backtest', { body: backtestParams });
  t.equal(res.status, 202);
  t.match(res.body, { task_id: /^[0-9a-f-]{36}$/, status: 'queued', created_at: String });
  t.equal(res.headers.get('location'), `/api/tasks/${res.body.task_id}`);
  const run = await db.selectFrom('wombat.runs').selectAll().where('id', '=', res.body.task_id).executeTakeFirstOrThrow();
  t.match(run, { job: 'backtest', trigger: 'task', state: 'queued', params: backtestParams });
  t.equal(await pgbossState(res.body.task_id), 'created');
  const status = await api.call('GET', `/api/tasks/${res.body.task_id}`);
  t.equal(status.status, 200);
  t.match(status.body, { task_id: res.body.task_id, type: 'backtest', status: 'queued', progress: 0, result: null, error: null, expires_at: null });
});

t.test('the older backtest endpoints are aliases and accept {params} wrapping', async (t) => {
  const res = await api.call('POST', '/api/backtests/run-async', { body: { params: backtestParams } });
  t.equal(res.status, 202);
  const status = await api.call('GET', `/api/backtests/status/${res.body.task_id}`);
  t.equal(status.status, 200);
  t.equal(status.body.type, 'backtest');
  const run = await db.selectFrom('wombat.runs').select('params').where('id', '=', res.body.task_id).executeTakeFirstOrThrow();
  t.same(run.params, backtestParams);
});

t.test('bad task parameters get 400 naming the field, and nothing is stored', async (t) => {
  const before = await db.selectFrom('wombat.runs').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  const res = await api.call('POST', '/api/tasks/backtest', { body: { ...backtestParams, exchange: 'binance', extra: 1 } });
  t.equal(res.status, 400);
  t.equal(res.body.error.code, 'invalid_input');
  t.match(res.body.error.message, /params\.exchange/);
  t.match(res.body.error.message, /extra/);
  const unknownType = await api.call('POST', '/api/tasks/mine-bitcoin', { body: {} });
  t.equal(unknownType.status, 400);
  t.match(unknownType.body.error.message, /backtest/);
  const after = await db.selectFrom('wombat.runs').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  t.equal(Number(after.n), Number(before.n));
});

t.test('an unknown task id is 404 and a malformed one 400', async (t) => {
  const missing = await api.call('GET', '/api/tasks/00000000-0000-4000-8000-000000000000');
  t.equal(missing.status, 404);
  t.equal(missing.body.error.code, 'task_not_found');
  const bad = await api.call('GET', '/api/tasks/not-a-uuid');
  t.equal(bad.status, 400);
  t.match(bad.body.error.message, /params\.id/);
});

t.test('cancelling a queued task cancels its job and marks the run cancelled', async (t) => {
  const { body } = await api.call('POST', '/api/tasks/canary', { body: {} });
  const res = await api.call('DELETE', `/api/tasks/${body.task_id}`);
  t.equal(res.status, 200);
  t.same(res.body, { task_id: body.task_id, status: 'cancelled', previous_status: 'queued' });
  t.equal(await pgbossState(body.task_id), 'cancelled');
  const status = await api.call('GET', `/api/tasks/${body.task_id}`);
  t.equal(status.body.status, 'cancelled');
  t.ok(status.body.finished_at);
  const again = await api.call('DELETE', `/api/tasks/${body.task_id}`);
  t.equal(again.status, 409);
  t.equal(again.body.error.code, 'task_finished');
});

t.test('cancelling a running task notifies workers with the run id', async (t) => {
  const { body } = await api.call('POST', '/api/tasks/canary', { body: {} });
  await db.updateTable('wombat.runs').set({ state: 'running', started_at: new Date() }).where('id', '=', body.task_id).execute();
  const listener = createSql({ url: api.database.url, poolSize: 1 });
  t.teardown(() => listener.end());
  let heard!: Promise<string>;
  // listen() resolves once LISTEN is in place, so the NOTIFY cannot be missed.
  await new Promise<void>((subscribed) => {
    heard = new Promise<string>((resolve) => void listener.listen(CANCEL_CHANNEL, resolve).then(() => subscribed()));
  });
  const res = await api.call('DELETE', `/api/tasks/${body.task_id}`);
  t.equal(res.status, 200);
  t.equal(res.body.previous_status, 'running');
  t.equal(await heard, body.task_id);
});

t.test('retrying a failed task publishes a new run with the same params, linked both ways', async (t) => {
  const { body } = await api.call('POST', '/api/tasks/backtest', { body: backtestParams });
  const running = await api.call('POST', `/api/tasks/${body.task_id}/retry`);
  t.equal(running.status, 409, 'a queued task cannot be retried');
  await db.updateTable('wombat.runs').set({ state: 'failed', error: { message: 'no candles' }, finished_at: new Date() }).where('id', '=', body.task_id).execute();
  const res = await api.call('POST', `/api/tasks/${body.task_id}/retry`);
  t.equal(res.status, 202);
  t.not(res.body.task_id, body.task_id);
  t.equal(res.body.retry_of, body.task_id);
  const old = await api.call('GET', `/api/tasks/${body.task_id}`);
  t.equal(old.body.retried_as, res.body.task_id);
  t.match(old.body.error, { message: 'no candles' });
  t.ok(old.body.expires_at, 'a finished task reports when it expires');
  const fresh = await api.call('GET', `/api/tasks/${res.body.task_id}`);
  t.match(fresh.body, { status: 'queued', retry_of: body.task_id, type: 'backtest' });
  const [settings] = await api.database.sql<{ expire_seconds: number }[]>`select expire_seconds from pgboss.job where id = ${res.body.task_id}`;
  t.equal(settings?.expire_seconds, 3600, 'the retry keeps the job settings');
  const twice = await api.call('POST', `/api/tasks/${body.task_id}/retry`);
  t.equal(twice.status, 409);
  t.equal(twice.body.error.code, 'already_requeued');
});

t.test('submission honours timeout and retry overrides', async (t) => {
  const res = await api.call('POST', '/api/tasks/canary?timeout_seconds=5&max_retries=2', { body: {} });
  t.equal(res.status, 202);
  const [job] = await api.database.sql<{ expire_seconds: number; retry_limit: number }[]>`select expire_seconds, retry_limit from pgboss.job where id = ${res.body.task_id}`;
  t.match(job, { expire_seconds: 5, retry_limit: 2 });
});

t.test('concurrent submissions are each recorded once with their own job and settings', async (t) => {
  const answers = await Promise.all(
    Array.from({ length: 60 }, (_, i) =>
      i % 2 === 0 ? api.call('POST', '/api/tasks/canary?timeout_seconds=7', { body: {} }) : api.call('POST', '/api/tasks/backtest', { body: backtestParams }),
    ),
  );
  t.same([...new Set(answers.map((a) => a.status))], [202]);
  const ids = answers.map((a) => a.body.task_id as string);
  t.equal(new Set(ids).size, 60, 'every submission has its own id');
  const jobs = await api.database.sql<{ id: string; name: string; expire_seconds: number; data: unknown }[]>`
    select id, name, expire_seconds, data from pgboss.job where id in ${api.database.sql(ids)}`;
  const runs = await db.selectFrom('wombat.runs').select(['id', 'job', 'state', 'trigger', 'params']).where('id', 'in', ids).execute();
  t.equal(jobs.length, 60, 'one pg-boss job per submission');
  t.equal(runs.length, 60, 'one run per submission');
  const byId = new Map(jobs.map((j) => [j.id, j]));
  ids.forEach((id, i) => {
    const job = byId.get(id)!;
    if (i % 2 === 0) t.match(job, { name: 'canary', expire_seconds: 7, data: {} });
    else t.match(job, { name: 'backtest', expire_seconds: 3600, data: backtestParams });
  });
  t.ok(runs.every((r) => r.state === 'queued' && r.trigger === 'task'));
  // Runs written in one transaction share its now(): fewer instants than runs means submissions were grouped.
  const [{ n }] = await api.database.sql<{ n: number }[]>`select count(distinct created_at)::int as n from wombat.runs where id in ${api.database.sql(ids)}`;
  t.ok(n < 60, `${n} transactions wrote 60 submissions`);
});

t.test('a fan-out task reports its children by state; a child requeued since counts once, as its new run', async (t) => {
  const res = await api.call('POST', '/api/tasks/collect-prices', { body: { exchanges: ['upbit'], symbols: ['KRW-BTC'] } });
  t.equal(res.status, 202);
  const parent = res.body.task_id as string;
  const alone = await api.call('GET', `/api/tasks/${parent}`);
  t.equal(alone.body.children, null, 'no children yet');

  const child = (state: string, extra: { requeued_as?: string } = {}) => ({ id: crypto.randomUUID(), state, ...extra });
  const retried = child('queued');
  const rows = [child('completed'), child('completed'), child('failed'), child('running'), retried, child('failed', { requeued_as: retried.id })];
  for (const r of rows) {
    await api.database.sql`
      insert into wombat.runs (id, job, trigger, parent_id, state, params, requeued_as)
      values (${r.id}, 'fetch-candles', 'fanout', ${parent}, ${r.state}, ${api.database.sql.json({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D' })}, ${r.requeued_as ?? null})`;
  }
  const status = await api.call('GET', `/api/tasks/${parent}`);
  t.equal(status.status, 200);
  t.same(status.body.children, { total: 5, active: 2, by_state: { completed: 2, failed: 1, running: 1, queued: 1 } });
});

t.test('a batch of a thousand tasks is one transaction: every task a run and a pg-boss job of its own', async (t) => {
  const tasks = Array.from({ length: 1000 }, (_, i) => ({ sleep_ms: i % 7 }));
  const res = await api.call('POST', '/api/tasks/canary/batch', { body: { tasks } });
  t.equal(res.status, 202, JSON.stringify(res.body).slice(0, 500));
  t.match(res.body, { count: 1000, status: 'queued', created_at: String });
  const ids: string[] = res.body.tasks.map((x: { task_id: string }) => x.task_id);
  t.equal(new Set(ids).size, 1000, 'each task has its own id');
  const runs = await api.database.sql<{ id: string; params: { sleep_ms: number }; trigger: string; state: string }[]>`
    select id, params, trigger, state from wombat.runs where id = any(${ids}::uuid[])`;
  t.equal(runs.length, 1000);
  const byId = new Map(runs.map((r) => [r.id, r]));
  t.ok(ids.every((id, i) => byId.get(id)?.params.sleep_ms === i % 7), 'in the order sent, each with its parameters');
  t.ok(runs.every((r) => r.trigger === 'task' && r.state === 'queued'));
  const [jobs] = await api.database.sql<{ n: number }[]>`select count(*)::int as n from pgboss.job where id = any(${ids}::uuid[]) and name = 'canary'`;
  t.equal(jobs!.n, 1000, 'and a pg-boss job each, under the same id');
  const one = await api.call('GET', `/api/tasks/${ids[999]}`);
  t.match(one.body, { task_id: ids[999], type: 'canary', status: 'queued' });
});

t.test('a batch with one bad task is refused whole, naming it; an empty or oversized batch too', async (t) => {
  const count = async () => (await api.database.sql<{ n: number }[]>`select count(*)::int as n from wombat.runs`)[0]!.n;
  const before = await count();
  const tasks: unknown[] = Array.from({ length: 10 }, () => ({}));
  tasks[7] = { sleep_ms: -5 };
  const bad = await api.call('POST', '/api/tasks/canary/batch', { body: { tasks } });
  t.equal(bad.status, 400);
  t.match(bad.body.error, { code: 'invalid_input', message: /tasks\[7\]/ });
  t.equal(await count(), before, 'nothing stored');
  t.equal((await api.call('POST', '/api/tasks/canary/batch', { body: { tasks: [] } })).status, 400);
  t.equal((await api.call('POST', '/api/tasks/canary/batch', { body: { tasks: Array.from({ length: 1001 }, () => ({})) } })).status, 400);
  const unknown = await api.call('POST', '/api/tasks/mine-bitcoin/batch', { body: { tasks: [{}] } });
  t.equal(unknown.status, 400);
  t.match(unknown.body.error.message, /mine-bitcoin/);
  t.equal((await api.call('POST', '/api/tasks/canary/batch', { body: { tasks: [{}] }, token: null })).status, 401, 'a write: the admin token is needed');
  t.equal(await count(), before);
});
