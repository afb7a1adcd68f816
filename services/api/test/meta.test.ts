import { JOB_TYPES } from '@wombat/core/jobs';
import { MISSED_POLICIES, OVERLAP_POLICIES } from '@wombat/core/schedules';
import { FINISHED_RUN_STATES, RUN_STATES, RUN_TRIGGERS } from '@wombat/core/runs';
import t from 'tap';
import { READ_TOKEN, startTestApi } from './helpers.ts';

/** GET /api/meta (the names the dashboard reads instead of keeping copies) and error.field on refused input. */
const api = await startTestApi(t);

t.test('/api/meta lists the run states, triggers, job types and policies as core defines them', async (t) => {
  const meta = await api.call('GET', '/api/meta', { token: null });
  t.equal(meta.status, 200);
  t.same(meta.body.run_states, RUN_STATES);
  t.same(meta.body.finished_run_states, FINISHED_RUN_STATES);
  t.same(meta.body.run_triggers, RUN_TRIGGERS);
  t.same(meta.body.dependency_skip_reasons, ['dependency_failed', 'dependency_timeout']);
  t.ok(meta.body.run_states.includes('waiting'));
  t.same(meta.body.job_types, JOB_TYPES);
  t.same(meta.body.overlap_policies, OVERLAP_POLICIES);
  t.same(meta.body.missed_policies, MISSED_POLICIES);
  const doc = (await api.call('GET', '/openapi.json')).body;
  t.ok(doc.paths['/api/meta']?.get, 'documented in the OpenAPI document');
  t.ok(doc.paths['/api/meta'].get.responses['200'].content['application/json'].schema.properties.run_states, 'with its fields');
});

t.test('/api/meta is a read: with reads behind a token it needs the read or admin token', async (t) => {
  const closed = await startTestApi(t, { auth: { reads: 'token' }, shareWith: api });
  t.equal((await closed.call('GET', '/api/meta', { token: null })).status, 401);
  t.equal((await closed.call('GET', '/api/meta', { token: READ_TOKEN })).status, 200);
});

t.test('a schedule refused for one field names it in error.field; code, message and details stay as before', async (t) => {
  const res = await api.call('POST', '/api/schedules', { body: { name: 'zone', job: 'canary', every: '1h', timezone: 'Mars/Olympus' } });
  t.equal(res.status, 400);
  t.equal(res.body.error.code, 'invalid_input');
  t.match(res.body.error.message, /^timezone "Mars\/Olympus" is not an IANA time zone/);
  t.same(res.body.error.details, [res.body.error.message]);
  t.equal(res.body.error.field, 'timezone');
  t.same(res.body.error.issues, [{ field: 'timezone', message: res.body.error.message }]);

  const cron = await api.call('POST', '/api/schedules', { body: { name: 'cron', job: 'canary', cron: '0 9 * *' } });
  t.equal(cron.body.error.field, 'cron');
  const params = await api.call('POST', '/api/schedules', { body: { name: 'p', job: 'fetch-candles', every: '1h', params: { exchange: 'nowhere' } } });
  t.equal(params.body.error.field, 'params', 'a problem inside params concerns the params field');
  const preview = await api.call('POST', '/api/schedules/preview', { body: { every: 'often' } });
  t.equal(preview.status, 400);
  t.equal(preview.body.error.field, 'every', 'the preview names the field too');
});

t.test('a schedule refused for several fields has no error.field but names each problem\'s field in error.issues', async (t) => {
  const res = await api.call('POST', '/api/schedules', { body: { name: '123', job: 'canary', cron: '0 9 * *', timezone: 'Mars/Olympus' } });
  t.equal(res.status, 400);
  t.equal(res.body.error.field, undefined);
  t.same(res.body.error.issues.map((i: { field: string }) => i.field), ['name', 'timezone', 'cron']);
  t.same(res.body.error.details, res.body.error.issues.map((i: { message: string }) => i.message), 'details keep the same lines');
  const both = await api.call('POST', '/api/schedules', { body: { name: 'two', job: 'canary', cron: '* * * * *', every: '5m' } });
  t.same(both.body.error.issues.map((i: { field: unknown }) => i.field), [null], 'a problem of several fields names none');
  t.equal(both.body.error.field, undefined);
});

t.test('a change that no longer fits the stored schedule names its field', async (t) => {
  const created = await api.call('POST', '/api/schedules', { body: { name: 'fits', job: 'canary', every: '1h' } });
  t.equal(created.status, 201);
  const res = await api.call('PATCH', `/api/schedules/${created.body.id}`, { body: { job: 'fetch-candles' } });
  t.equal(res.status, 400);
  t.equal(res.body.error.field, 'params');
});

t.test('a request the route schema refuses names the field too', async (t) => {
  const query = await api.call('POST', '/api/tasks/canary?max_retries=many', { body: {} });
  t.equal(query.status, 400);
  t.equal(query.body.error.code, 'invalid_request');
  t.equal(query.body.error.field, 'max_retries');
  const body = await api.call('POST', '/api/dead-letters/purge', { body: { older_than_hours: 'old' } });
  t.equal(body.status, 400);
  t.equal(body.body.error.field, 'older_than_hours');
});

t.test('a task refused for one parameter names it in error.field; a problem of several parameters names none', async (t) => {
  const res = await api.call('POST', '/api/tasks/fetch-candles', { body: { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '7m' } });
  t.equal(res.status, 400);
  t.equal(res.body.error.code, 'invalid_input');
  t.match(res.body.error.message, /^params\.timeframe /);
  t.same(res.body.error.details, [res.body.error.message]);
  t.equal(res.body.error.field, 'timeframe');
  const both = await api.call('POST', '/api/tasks/fetch-candles', {
    body: { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D', daysBack: 3, from: '2026-01-01T00:00:00Z', to: '2026-01-02T00:00:00Z' },
  });
  t.equal(both.status, 400);
  t.equal(both.body.error.field, undefined);
  t.same(both.body.error.issues.map((i: { field: unknown }) => i.field), [null]);
  const now = await api.call('POST', '/api/scheduler/trigger', { body: { job: 'fetch-candles', params: { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '7m' } } });
  t.equal(now.status, 400);
  t.equal(now.body.error.field, 'params', 'run now: the parameters are the params field of its body');
});
