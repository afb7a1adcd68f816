import { createDatabase, createLogger } from '@wombat/core/platform';
import postgres from 'postgres';
import { testAdminUrl } from '@wombat/core/testing';
import t from 'tap';
import { buildApp } from '../src/app.ts';
import { ADMIN_TOKEN, READ_TOKEN, startTestApi } from './helpers.ts';

const api = await startTestApi(t);

/** Every documented route, from the app's own OpenAPI document: a new route cannot escape these checks. */
async function routes(): Promise<{ method: string; path: string }[]> {
  const doc = (await api.call('GET', '/openapi.json', { token: null })).body as { paths: Record<string, Record<string, unknown>> };
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.keys(ops).map((m) => ({ method: m.toUpperCase(), path: path.replace(/\{id\}/g, '00000000-0000-4000-8000-000000000000').replace(/\{type\}/g, 'canary') })),
  );
}

t.test('the OpenAPI document lists every route family', async (t) => {
  const paths = (await routes()).map((r) => `${r.method} ${r.path}`);
  for (const expected of ['GET /health', 'GET /metrics', 'GET /api/scheduler/status', 'POST /api/scheduler/trigger', 'POST /api/tasks/canary', 'DELETE /api/tasks/00000000-0000-4000-8000-000000000000', 'GET /api/runs', 'GET /api/dead-letters', 'POST /api/schedules', 'POST /api/schedules/preview', 'POST /api/backtests/run-async']) {
    t.ok(paths.includes(expected), expected);
  }
});

t.test('every mutating route answers 401 without a token, 401 with a wrong one and 403 with the read token', async (t) => {
  const mutating = (await routes()).filter((r) => r.method !== 'GET' && r.path !== '/api/schedules/preview');
  t.ok(mutating.length >= 15, `found ${mutating.length} mutating routes`);
  for (const r of mutating) {
    const none = await api.call(r.method, r.path, { token: null, body: {} });
    t.equal(none.status, 401, `${r.method} ${r.path} without a token`);
    t.equal(none.body.error.code, 'unauthorized');
    const wrong = await api.call(r.method, r.path, { token: 'x'.repeat(32), body: {} });
    t.equal(wrong.status, 401, `${r.method} ${r.path} with a wrong token`);
    const reader = await api.call(r.method, r.path, { token: READ_TOKEN, body: {} });
    t.equal(reader.status, 403, `${r.method} ${r.path} with the read token`);
    const admin = await api.call(r.method, r.path, { token: ADMIN_TOKEN, body: {} });
    t.not(admin.status, 401, `${r.method} ${r.path} with the admin token gets past auth`);
    t.not(admin.status, 403);
  }
});

t.test('the schedule preview is a read: it computes and stores nothing', async (t) => {
  const open = await api.call('POST', '/api/schedules/preview', { token: null, body: { every: '1h' } });
  t.equal(open.status, 200);
  const reader = await api.call('POST', '/api/schedules/preview', { token: READ_TOKEN, body: { every: '1h' } });
  t.equal(reader.status, 200);
});

t.test('read routes are open by default', async (t) => {
  for (const r of (await routes()).filter((x) => x.method === 'GET')) {
    const res = await api.call('GET', r.path, { token: null });
    t.not(res.status, 401, `${r.path} needs no token`);
  }
});

t.test('with API_AUTH_READS=token reads need the read or admin token; health and OpenAPI stay open', async (t) => {
  const closed = await startTestApi(t, { auth: { reads: 'token' }, shareWith: api });
  t.equal((await closed.call('GET', '/api/runs', { token: null })).status, 401);
  t.equal((await closed.call('GET', '/api/runs', { token: READ_TOKEN })).status, 200);
  t.equal((await closed.call('GET', '/api/runs', { token: ADMIN_TOKEN })).status, 200);
  t.equal((await closed.call('GET', '/metrics', { token: null })).status, 401);
  t.equal((await closed.call('GET', '/health', { token: null })).status, 200);
  t.equal((await closed.call('GET', '/openapi.json', { token: null })).status, 200);
});

t.test('without an admin token every mutation is refused with a message saying what to set', async (t) => {
  const locked = await startTestApi(t, { auth: { adminToken: undefined }, shareWith: api });
  const res = await locked.call('POST', '/api/tasks/canary', { token: 'anything-at-all-1234', body: {} });
  t.equal(res.status, 401);
  t.equal(res.body.error.code, 'admin_token_unset');
  t.match(res.body.error.message, /API_ADMIN_TOKEN/);
});

t.test('tokens never reach the log', async (t) => {
  const lines: string[] = [];
  const { createLogger } = await import('@wombat/core/platform');
  const log = createLogger({ name: 'api', level: 'trace', format: 'json', destination: { write: (s: string) => lines.push(s) } as never });
  const app = await buildApp({ db: api.database.db, sql: api.database.sql, boss: api.boss, log, auth: { adminToken: ADMIN_TOKEN, readToken: READ_TOKEN, reads: 'open' }, taskResultTtlDays: 7 });
  t.teardown(() => app.close());
  await app.inject({ method: 'POST', url: '/api/tasks/canary', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, payload: {} });
  await app.inject({ method: 'POST', url: '/api/tasks/canary', headers: { authorization: `Bearer ${READ_TOKEN}` }, payload: {} });
  await app.inject({ method: 'GET', url: '/api/runs?state=bad', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  t.ok(lines.length > 0, 'requests were logged');
  const all = lines.join('');
  t.notOk(all.includes(ADMIN_TOKEN));
  t.notOk(all.includes(READ_TOKEN));
});

t.test('health answers 503 while the database is unreachable, and still answers', async (t) => {
  const down = createDatabase({ url: 'postgres://nobody@127.0.0.1:1/none', poolSize: 1, connectTimeoutSeconds: 1 });
  t.teardown(() => down.close());
  const app = await buildApp({ db: down.db, sql: down.sql, boss: api.boss, log: api.database.log, auth: { reads: 'open' }, taskResultTtlDays: 7 });
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/health' });
  t.equal(res.statusCode, 503);
  t.match(res.json(), { status: 'degraded', database: { ok: false, code: 'unreachable', error: 'cannot connect to the database' } });
  t.notMatch(res.body, /127\.0\.0\.1|nobody|:1\b|ECONNREFUSED/, 'neither host, port, role nor driver message');
});

t.test('health names a refused login by code, not by the driver\'s message', async (t) => {
  const role = `wombat_nologin_${process.pid}`;
  // The test database's own role may not create roles (a managed database's owner cannot): the server's may.
  const admin = postgres(testAdminUrl(), { max: 1, onnotice: () => {}, connect_timeout: 10 });
  t.teardown(() => admin.end());
  await admin.unsafe(`create role ${role} nologin`);
  t.teardown(() => admin.unsafe(`drop role if exists ${role}`));
  const url = new URL(api.database.url);
  url.username = role;
  url.password = '';
  const refused = createDatabase({ url: url.href, poolSize: 1, connectTimeoutSeconds: 2 });
  t.teardown(() => refused.close());
  const lines: string[] = [];
  const app = await buildApp({ db: refused.db, sql: refused.sql, boss: api.boss, log: createLogger({ name: 'api', level: 'info', format: 'json', destination: { write: (l: string) => lines.push(l) } as never }), auth: { reads: 'open' }, taskResultTtlDays: 7 });
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/health' });
  t.equal(res.statusCode, 503);
  t.same(res.json().database, { ok: false, latency_ms: res.json().database.latency_ms, code: 'auth_failed', error: 'the database refused our login' });
  t.notMatch(res.body, new RegExp(`${role}|not permitted|password|${url.port}`), 'the answer names neither the role nor the port');
  // Refused as a nologin role, or before that by password (the test cluster asks for one).
  t.match(lines.join(''), /not permitted to log in|password authentication failed/, 'the driver\'s message is in the journal');
});
