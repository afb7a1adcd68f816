import t from 'tap';
import { sql } from 'kysely';
import { insertSchedule, validateScheduleInput } from '@wombat/core/schedules';
import { READ_TOKEN, startTestApi } from './helpers.ts';

/** POST /api/schedules/{id}/backfill: the plan (dry run), the start, and the errors that say what to fix. */
const api = await startTestApi(t);
const { db } = api.database;
const DAY_MS = 86_400_000;
const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
const day = (i: number) => new Date(today + i * DAY_MS).toISOString();

async function schedule(name: string, job: string, params: object = {}) {
  const r = validateScheduleInput({ name, job, cron: '0 0 * * *', timezone: 'UTC', params });
  if (!r.ok) throw new Error(r.problems.join('; '));
  return insertSchedule(db, r.value);
}

async function counts() {
  const r = await sql<{ runs: number; jobs: number }>`select (select count(*)::int from wombat.runs) as runs, (select count(*)::int from pgboss.job) as jobs`.execute(db);
  return r.rows[0]!;
}

t.test('a dry run lists every occurrence with its params and what is recorded, and publishes nothing', async (t) => {
  const s = await schedule('dry', 'canary', { sleep_ms: 5 });
  // Day -4 completed already (a schedule run), day -3 failed.
  await sql`insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, finished_at)
            values (gen_random_uuid(), 'canary', 'schedule', ${s.id}, ${day(-4)}, 'completed', now()),
                   (gen_random_uuid(), 'canary', 'schedule', ${s.id}, ${day(-3)}, 'failed', now())`.execute(db);
  const before = await counts();
  const res = await api.call('POST', `/api/schedules/${s.id}/backfill`, { body: { from: day(-5), to: day(-2), dry_run: true } });
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.same(await counts(), before, 'no run and no pg-boss job was written');
  t.match(res.body, { schedule_id: s.id, dry_run: true, from: day(-5), to: day(-2), concurrency: 1, run: 2, skip: 1, notes: [] });
  t.same(res.body.occurrences, [
    { schedule_id: s.id, schedule: 'dry', job: 'canary', scheduled_for: day(-5), params: { sleep_ms: 5, period: { from: day(-6), to: day(-5) } }, existing: 'none', action: 'run' },
    { schedule_id: s.id, schedule: 'dry', job: 'canary', scheduled_for: day(-4), params: { sleep_ms: 5, period: { from: day(-5), to: day(-4) } }, existing: 'completed', action: 'skip' },
    { schedule_id: s.id, schedule: 'dry', job: 'canary', scheduled_for: day(-3), params: { sleep_ms: 5, period: { from: day(-4), to: day(-3) } }, existing: 'failed', action: 'run' },
  ]);
  const rerun = await api.call('POST', `/api/schedules/${s.id}/backfill`, { body: { from: day(-5), to: day(-2), dry_run: true, rerun: true } });
  t.same(rerun.body.occurrences.map((o: { action: string }) => o.action), ['run', 'run', 'run'], 'rerun runs the completed one too');
  const dates = await api.call('POST', `/api/schedules/${s.id}/backfill`, { body: { from: day(-5).slice(0, 10), to: day(-2).slice(0, 10), dry_run: true } });
  t.equal(dates.body.occurrences.length, 3, 'dates are midnight in the schedule\'s time zone');
  t.equal((await api.call('POST', `/api/schedules/${s.id}/backfill`, { body: { from: day(-5), to: day(-2), dry_run: true }, token: READ_TOKEN })).status, 403, 'admins only');
});

t.test('a schedule with prerequisites is backfilled with them: the plan lists their occurrences and the notes say so', async (t) => {
  const first = await schedule('pre-symbols', 'canary');
  const r = validateScheduleInput({ name: 'pre-prices', job: 'canary', cron: '0 0 * * *', timezone: 'UTC', after: ['pre-symbols'] });
  if (!r.ok) throw new Error(r.problems.join('; '));
  const s = await insertSchedule(db, r.value);
  await sql`insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, finished_at)
            values (gen_random_uuid(), 'canary', 'schedule', ${first.id}, ${day(-4)}, 'completed', now())`.execute(db);
  const before = await counts();
  const res = await api.call('POST', `/api/schedules/${s.id}/backfill`, { body: { from: day(-5), to: day(-3), dry_run: true } });
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.same(await counts(), before, 'nothing recorded');
  t.same(
    res.body.occurrences.map((o: { schedule: string; scheduled_for: string; action: string }) => [o.schedule, o.scheduled_for, o.action]),
    [['pre-symbols', day(-5), 'run'], ['pre-prices', day(-5), 'run'], ['pre-symbols', day(-4), 'skip'], ['pre-prices', day(-4), 'run']],
    'each day\'s prerequisite first; the one completed already is skipped',
  );
  t.match(res.body, { run: 3, skip: 1, notes: [/^pre-prices waits for pre-symbols \(after\): the backfill covers its prerequisites over the same range, pre-symbols \(1 to run, 1 skipped\)/] });
});

t.test('a backfill starts as one parent with a held child per occurrence to run, the completed one skipped', async (t) => {
  const s = await schedule('start', 'canary');
  await sql`insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, finished_at)
            values (gen_random_uuid(), 'canary', 'schedule', ${s.id}, ${day(-9)}, 'completed', now())`.execute(db);
  const res = await api.call('POST', `/api/schedules/${s.id}/backfill`, { body: { from: day(-10), to: day(-6), concurrency: 2, pause_on_failure: true } });
  t.equal(res.status, 202, JSON.stringify(res.body));
  t.match(res.body, { dry_run: false, status: 'running', run: 3, skip: 1, run_id: String });
  t.equal(res.headers.get('location'), `/api/runs/${res.body.run_id}`);
  const parent = (await api.call('GET', `/api/runs/${res.body.run_id}`)).body;
  t.match(parent, { trigger: 'backfill', state: 'running', schedule_id: s.id, params: { backfill: { concurrency: 2, pause_on_failure: true, occurrences: 4, skipped: 1 } } });
  const kids = await db.selectFrom('wombat.runs').select(['state', 'scheduled_for', 'trigger']).where('parent_id', '=', res.body.run_id).orderBy('scheduled_for').execute();
  t.same(kids.map((k) => [new Date(k.scheduled_for!).toISOString(), k.state, k.trigger]), [
    [day(-10), 'queued', 'backfill'],
    [day(-8), 'queued', 'backfill'],
    [day(-7), 'held', 'backfill'],
  ], 'two released at once (the concurrency), the third waits for a slot');
  const history = await api.call('GET', `/api/runs?trigger=backfill&schedule=${s.id}`);
  t.equal(history.body.total, 4, 'the run history shows the backfill and its children');

  const cancel = await api.call('POST', `/api/runs/${res.body.run_id}/cancel`);
  t.equal(cancel.status, 200, JSON.stringify(cancel.body));
  t.equal(cancel.body.state, 'cancelled');
  const after = await db.selectFrom('wombat.runs').select('state').where('parent_id', '=', res.body.run_id).execute();
  t.same(after.map((k) => k.state), ['cancelled', 'cancelled', 'cancelled'], 'cancelling the parent cancels its children');
  t.equal((await api.call('POST', `/api/runs/${res.body.run_id}/cancel`)).status, 409, 'a second cancel is a conflict');
  const resume = await api.call('POST', `/api/runs/${res.body.run_id}/resume`);
  t.equal(resume.status, 409);
  t.match(resume.body.error, { code: 'backfill_not_paused' });
});

t.test('refuses what it cannot do with a 4xx that says what to fix', async (t) => {
  const s = await schedule('refused', 'canary');
  const before = await counts();
  const ask = (body: object, id: number = s.id) => api.call('POST', `/api/schedules/${id}/backfill`, { body });
  const tooMany = await ask({ from: day(-30), to: day(-1), max: 10 });
  t.equal(tooMany.status, 400);
  t.match(tooMany.body.error, { code: 'backfill_too_large', message: /more than 10 occurrences.*raise max \(--max\)/ });
  const bad = await ask({ from: 'yesterday', to: day(1) });
  t.equal(bad.status, 400);
  t.match(bad.body.error.issues, [
    { field: 'from', message: /from must be an ISO time .* or a date .*, not "yesterday"/ },
    { field: 'to', message: /is in the future: a backfill runs past occurrences/ },
  ]);
  t.match((await ask({ from: day(-1), to: day(-2) })).body.error, { field: 'to', message: /must be later than from/ });
  t.match((await ask({ from: day(-3), to: day(-1), concurrency: 0 })).body.error, { field: 'concurrency', message: /from 1 to 100/ });
  const report = await schedule('report', 'collection-report', { period: 'week' });
  const unsupported = await ask({ from: day(-3), to: day(-1) }, report.id);
  t.equal(unsupported.status, 400);
  t.match(unsupported.body.error, { code: 'backfill_unsupported', message: /takes no logical period/ });
  const pinned = await schedule('pinned', 'fetch-candles', { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D', from: day(-100), to: day(-90) });
  t.match((await ask({ from: day(-3), to: day(-1) }, pinned.id)).body.error, { code: 'backfill_unsupported', message: /give either period or from\/to, not both/ });
  t.equal((await ask({ from: day(-3), to: day(-1) }, 999_999)).status, 404);
  const empty = await ask({ from: `${day(-3).slice(0, 10)}T01:00:00Z`, to: `${day(-3).slice(0, 10)}T02:00:00Z` });
  t.equal(empty.status, 409);
  t.match(empty.body.error, { code: 'nothing_to_backfill', message: /no occurrence/ });
  t.same(await counts(), before, 'nothing was written');
});

t.test('the api document has the route and the backfill trigger', async (t) => {
  const doc = (await api.call('GET', '/openapi.json')).body;
  t.ok(doc.paths['/api/schedules/{id}/backfill']?.post, 'POST /api/schedules/{id}/backfill');
  t.ok(doc.paths['/api/runs/{id}/resume']?.post, 'POST /api/runs/{id}/resume');
  t.ok(doc.paths['/api/runs/{id}/cancel']?.post, 'POST /api/runs/{id}/cancel');
  t.match(JSON.stringify(doc), /"backfill"/);
  const meta = (await api.call('GET', '/api/meta')).body;
  t.ok(meta.run_triggers.includes('backfill'));
});
