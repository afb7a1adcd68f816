import { nextOccurrences, validateScheduleInput } from '@wombat/core/schedules';
import t from 'tap';
import { startTestApi } from './helpers.ts';

const api = await startTestApi(t);

const definition = { name: 'hourly canary', job: 'canary', cron: '0 * * * *', timezone: 'Asia/Seoul' };

t.test('a schedule is created, read, listed, changed and deleted over HTTP', async (t) => {
  const created = await api.call('POST', '/api/schedules', { body: definition });
  t.equal(created.status, 201);
  t.match(created.body, { id: Number, name: 'hourly canary', job: 'canary', cron: '0 * * * *', trigger: 'cron 0 * * * *', timezone: 'Asia/Seoul', status: 'active' });
  const id = created.body.id;
  t.equal(created.headers.get('location'), `/api/schedules/${id}`);

  const got = await api.call('GET', `/api/schedules/${id}`);
  t.same(got.body, created.body);
  const list = await api.call('GET', '/api/schedules');
  t.ok(list.body.schedules.some((s: { id: number }) => s.id === id));

  const patched = await api.call('PATCH', `/api/schedules/${id}`, { body: { every: '5m' } });
  t.equal(patched.status, 200, patched.status === 200 ? 'patched' : JSON.stringify(patched.body));
  t.match(patched.body, { every: '5m', cron: null, trigger: 'every 5m' });

  const replaced = await api.call('PUT', `/api/schedules/${id}`, { body: { ...definition, name: 'twice daily', cron: undefined, times: ['09:00', '18:00'] } });
  t.equal(replaced.status, 200, replaced.status === 200 ? 'replaced' : JSON.stringify(replaced.body));
  t.match(replaced.body, { name: 'twice daily', times: ['09:00', '18:00'], trigger: 'at 09:00, 18:00' });

  const deleted = await api.call('DELETE', `/api/schedules/${id}`);
  t.equal(deleted.status, 204);
  t.equal((await api.call('GET', `/api/schedules/${id}`)).status, 404);
  t.equal((await api.call('DELETE', `/api/schedules/${id}`)).status, 404);
});

t.test('invalid definitions get 400 saying what to fix, and a taken name 409', async (t) => {
  const noTrigger = await api.call('POST', '/api/schedules', { body: { name: 'x', job: 'canary' } });
  t.equal(noTrigger.status, 400);
  t.match(noTrigger.body.error.message, /cron|every|times/);
  const two = await api.call('POST', '/api/schedules', { body: { name: 'x', job: 'canary', cron: '* * * * *', every: '5m' } });
  t.equal(two.status, 400);
  const badZone = await api.call('POST', '/api/schedules', { body: { ...definition, name: 'y', timezone: 'Mars/Olympus' } });
  t.equal(badZone.status, 400);
  t.match(badZone.body.error.message, /time zone/);
  const badParams = await api.call('POST', '/api/schedules', { body: { name: 'z', job: 'fetch-candles', every: '1h', params: { exchange: 'nowhere' } } });
  t.equal(badParams.status, 400);
  t.match(badParams.body.error.message, /params/);
  const first = await api.call('POST', '/api/schedules', { body: { ...definition, name: 'unique' } });
  t.equal(first.status, 201);
  const clash = await api.call('POST', '/api/schedules', { body: { ...definition, name: 'unique' } });
  t.equal(clash.status, 409);
  t.equal(clash.body.error.code, 'schedule_name_taken');
});

t.test('pause keeps its reason, resume clears it; both show in the scheduler status', async (t) => {
  const { body: s } = await api.call('POST', '/api/schedules', { body: { ...definition, name: 'pausable' } });
  const paused = await api.call('POST', `/api/schedules/${s.id}/pause`, { body: { reason: 'exchange maintenance' } });
  t.equal(paused.status, 200);
  t.match(paused.body, { status: 'paused', paused_reason: 'exchange maintenance' });
  let status = await api.call('GET', '/api/scheduler/status');
  t.equal(status.status, 200);
  t.match(status.body.schedules.find((x: { id: number }) => x.id === s.id), { status: 'paused', paused_reason: 'exchange maintenance', next_run_at: null, trigger: 'cron 0 * * * *' });
  const resumed = await api.call('POST', `/api/schedules/${s.id}/resume`);
  t.match(resumed.body, { status: 'active', paused_reason: null });
  status = await api.call('GET', '/api/scheduler/status');
  const row = status.body.schedules.find((x: { id: number }) => x.id === s.id);
  t.ok(Date.parse(row.next_run_at) > Date.now(), 'an active schedule shows its next run');
  t.ok(Array.isArray(status.body.engines));
});

t.test('preview returns the same occurrences as the engine maths', async (t) => {
  const after = '2026-03-07T00:00:00Z';
  const body = { every: '90m', timezone: 'America/New_York' };
  const res = await api.call('POST', `/api/schedules/preview?count=7&after=${after}`, { body });
  t.equal(res.status, 200, res.status === 200 ? 'previewed' : JSON.stringify(res.body));
  const check = validateScheduleInput({ name: 'p', job: 'canary', ...body });
  if (!check.ok) throw new Error(check.problems.join('; '));
  const expected = nextOccurrences(check.value, new Date(after), 7).map((d) => d.toISOString());
  t.same(res.body.occurrences, expected);
  t.equal(res.body.trigger, 'every 90m');
  const times = await api.call('POST', '/api/schedules/preview?count=3&after=2026-01-01T00:00:00Z', { body: { times: ['09:00', '18:00'], timezone: 'Asia/Seoul' } });
  // 00:00Z is 09:00 in Seoul: strictly after it comes 18:00 (09:00Z).
  t.same(times.body.occurrences, ['2026-01-01T09:00:00.000Z', '2026-01-02T00:00:00.000Z', '2026-01-02T09:00:00.000Z']);
  const bad = await api.call('POST', '/api/schedules/preview', { body: { cron: 'not a cron' } });
  t.equal(bad.status, 400);
  const tooMany = await api.call('POST', '/api/schedules/preview?count=1000', { body: { every: '1h' } });
  t.equal(tooMany.status, 400);
});

t.test('triggering a schedule publishes a manual run listed under its runs', async (t) => {
  const { body: s } = await api.call('POST', '/api/schedules', { body: { ...definition, name: 'triggered' } });
  const res = await api.call('POST', '/api/scheduler/trigger', { body: { schedule_id: s.id } });
  t.equal(res.status, 202, res.status === 202 ? 'triggered' : JSON.stringify(res.body));
  const direct = await api.call('POST', `/api/schedules/${s.id}/trigger`);
  t.equal(direct.status, 202);
  const runs = await api.call('GET', `/api/runs?schedule=${s.id}`);
  t.equal(runs.status, 200);
  t.same(runs.body.runs.map((r: { id: string }) => r.id).sort(), [res.body.run_id, direct.body.run_id].sort());
  t.match(runs.body.runs[0], { job: 'canary', trigger: 'manual', schedule_id: s.id, state: 'queued' });
  const missing = await api.call('POST', '/api/scheduler/trigger', { body: { schedule_id: 999999 } });
  t.equal(missing.status, 404);
  const both = await api.call('POST', '/api/scheduler/trigger', { body: { schedule_id: s.id, job: 'canary' } });
  t.equal(both.status, 400);
  const byJob = await api.call('POST', '/api/scheduler/trigger', { body: { job: 'canary' } });
  t.equal(byJob.status, 202);
});

t.test('the status tells running, disabled, stale and stopped engines apart by their heartbeat rows', async (t) => {
  const { sql } = api.database;
  await sql`
    insert into wombat.engines (id, host, pid, version, last_beat_at, heartbeat_interval_ms, enabled, stopped_at) values
      ('00000000-0000-4000-8000-00000000000a', 'a', 1, '0.1.0', now(), 5000, true, null),
      ('00000000-0000-4000-8000-00000000000b', 'b', 2, '0.1.0', now(), 5000, false, null),
      ('00000000-0000-4000-8000-00000000000c', 'c', 3, '0.1.0', now() - interval '1 minute', 5000, true, null),
      ('00000000-0000-4000-8000-00000000000d', 'd', 4, '0.1.0', now() - interval '10 seconds', 5000, true, now())`;
  const { body } = await api.call('GET', '/api/scheduler/status');
  const byHost = Object.fromEntries(body.engines.map((e: { host: string; state: string }) => [e.host, e]));
  t.equal(byHost.a.state, 'running');
  t.equal(byHost.b.state, 'disabled');
  t.equal(byHost.c.state, 'stale');
  t.ok(byHost.c.heartbeat_age_seconds >= 55, 'the heartbeat age is reported');
  t.equal(byHost.d.state, 'stopped');
  const metrics = (await api.call('GET', '/metrics')).body as string;
  t.match(metrics, /wombat_engine_heartbeat_age_seconds\{engine="00000000-0000-4000-8000-00000000000c",enabled="true"\} (5\d|6\d)/);
  t.notMatch(metrics, /00000000-0000-4000-8000-00000000000d/, 'stopped engines are not reported');
});

t.test('a schedule created without a time zone gets the deployment\'s TZ, and preview uses it too', async (t) => {
  const api = await startTestApi(t);
  const created = await api.call('POST', '/api/schedules', { body: { name: 'no zone', job: 'canary', times: ['09:00'] } });
  t.equal(created.status, 201);
  t.equal(created.body.timezone, 'Asia/Seoul');
  const preview = await api.call('POST', '/api/schedules/preview?count=1&after=2025-12-31T12:00:00Z', { body: { times: ['09:00'] } });
  t.same(preview.body.occurrences, ['2026-01-01T00:00:00.000Z'], '09:00 in Seoul is 00:00 UTC');
});

t.test('the OpenAPI document types schedule bodies with core\'s shared schedule schema', async (t) => {
  const doc = (await api.call('GET', '/openapi.json')).body;
  const create = doc.paths['/api/schedules'].post.requestBody.content['application/json'].schema;
  t.same(create.required.sort(), ['job', 'name']);
  t.equal(create.additionalProperties, false);
  t.equal(create.properties.cron.type, 'string');
  t.equal(create.properties.times.type, 'array');
  t.equal(create.properties.catchup_max.type, 'integer');
  t.equal(create.properties.catchup_max.minimum, 1);
  t.ok(JSON.stringify(create.properties.job).includes('fetch-candles'), 'job is an enumeration of the job types');
  t.ok(JSON.stringify(create.properties.overlap).includes('queue-one'));
  const patch = doc.paths['/api/schedules/{id}'].patch.requestBody.content['application/json'].schema;
  t.notOk(patch.required, 'a PATCH requires nothing');
  t.equal(patch.properties.every.type, 'string');

  // The body is still checked by core, with a message per field that says what to fix (the CLI's too).
  const bad = await api.call('POST', '/api/schedules', { body: { name: 'x', job: 'canary', every: '1h', catchup_max: 0, colour: 'red' } });
  t.equal(bad.status, 400);
  t.match(bad.body.error.message, /colour is not a schedule field/);
  t.match(bad.body.error.message, /catchup_max must be an integer from 1 to 1000/);
  t.equal(validateScheduleInput({ name: 'x', job: 'canary', every: '1h', catchup_max: 0 }).ok, false, 'the same verdict in core');
});
