import t from 'tap';
import { publishRun } from '@wombat/core/runs';
import { READ_TOKEN, startTestApi } from './helpers.ts';

/** POST /api/runs/cancel: a queue emptied in one step, runs and pg-boss jobs together, for admins. */
const api = await startTestApi(t);
const { db, sql } = api.database;

async function states(ids: string[]) {
  const runs = await sql<{ state: string; n: number }[]>`select state, count(*)::int as n from wombat.runs where id = any(${ids}::uuid[]) group by state`;
  const jobs = await sql<{ state: string; n: number }[]>`select state::text, count(*)::int as n from pgboss.job where id = any(${ids}::uuid[]) group by state`;
  return { runs: Object.fromEntries(runs.map((r) => [r.state, r.n])), jobs: Object.fromEntries(jobs.map((r) => [r.state, r.n])) };
}

t.test('cancels the queued runs of a job type with their jobs, honouring older_than, and says how many', async (t) => {
  const ids: string[] = [];
  for (let i = 0; i < 50; i++) ids.push(await publishRun(db, api.boss, { job: 'canary', params: {}, trigger: 'task' }));
  const old = ids.slice(0, 15);
  await sql`update wombat.runs set created_at = now() - interval '3 hours' where id = any(${old}::uuid[])`;

  const older = await api.call('POST', '/api/runs/cancel', { body: { job: 'canary', older_than: '2h' } });
  t.equal(older.status, 200, JSON.stringify(older.body));
  t.same(older.body, { cancelled: 15, job: 'canary', states: ['queued'], older_than: '2h' });
  t.same(await states(old), { runs: { cancelled: 15 }, jobs: { cancelled: 15 } });
  t.same(await states(ids.slice(15)), { runs: { queued: 35 }, jobs: { created: 35 } }, 'younger runs wait on');

  const all = await api.call('POST', '/api/runs/cancel', { body: { job: 'canary', state: ['queued'] } });
  t.same(all.body, { cancelled: 35, job: 'canary', states: ['queued'], older_than: null });
  t.same(await states(ids), { runs: { cancelled: 50 }, jobs: { cancelled: 50 } }, 'the run history agrees with pg-boss');
  const listed = await api.call('GET', '/api/runs?job=canary&state=cancelled&limit=1');
  t.equal(listed.body.total, 50, 'the history shows them cancelled');
});

t.test('refuses bad input with 400 naming the field, and anyone but an admin', async (t) => {
  const job = await api.call('POST', '/api/runs/cancel', { body: { job: 'mine-bitcoin' } });
  t.equal(job.status, 400);
  t.match(job.body.error, { code: 'invalid_input', field: 'job', message: /"mine-bitcoin" is not a job type/ });
  const state = await api.call('POST', '/api/runs/cancel', { body: { job: 'canary', state: 'failed' } });
  t.equal(state.status, 400);
  t.match(state.body.error, { field: 'state', message: /state "failed" cannot be cancelled; give one of waiting, held, queued, running, retrying/ });
  const age = await api.call('POST', '/api/runs/cancel', { body: { job: 'canary', older_than: '1 hour' } });
  t.equal(age.status, 400);
  t.match(age.body.error, { field: 'older_than' });
  t.equal((await api.call('POST', '/api/runs/cancel', { body: { job: 'canary' }, token: READ_TOKEN })).status, 403, 'the read token may not');
  t.equal((await api.call('POST', '/api/runs/cancel', { body: { job: 'canary' }, token: null })).status, 401, 'nor no token');
});
