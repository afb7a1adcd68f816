import t from 'tap';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { createLogger, loadConfig, startBoss } from '@wombat/core/platform';
import { alertChannelFields, alertFields, createAlerting, DEAD_LETTER_GROUP_CAP } from '@wombat/core/alerts';
import { closedPort, startFakeHook, startFakeSmtp } from '@wombat/core/alerts-fakes';
import { createTestDatabase } from '@wombat/core/testing';
import { buildApp } from '../src/app.ts';
import { ADMIN_TOKEN, READ_TOKEN } from './helpers.ts';

const tdb = await createTestDatabase(t);
const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 2 });
t.teardown(() => boss.stop({ graceful: false, close: true }));
const slack = await startFakeHook(t);
const smtp = await startFakeSmtp(t);
const refused = await closedPort();
const webhookUrl = `http://127.0.0.1:${refused}/hooks/api-w3bh00k-s3cret`;
const channelEnv = {
  SLACK_WEBHOOK_URL: slack.url,
  SMTP_URL: smtp.url,
  ALERT_EMAIL_FROM: 'wombat@example.com',
  ALERT_EMAIL_TO: 'ops@example.com,dev@example.com',
  ALERT_WEBHOOK_URL: webhookUrl,
  ALERT_CHANNEL_TIMEOUT_MS: '3000',
};
const lines: string[] = [];
const log = createLogger({
  name: 'api-test',
  level: 'debug',
  format: 'json',
  destination: new Writable({
    write(chunk, _e, cb) {
      lines.push(String(chunk));
      cb();
    },
  }),
});
const app = await buildApp({
  db: tdb.db,
  sql: tdb.sql,
  boss,
  log,
  auth: { adminToken: ADMIN_TOKEN, readToken: READ_TOKEN, reads: 'open' },
  taskResultTtlDays: 7,
  alertChannels: loadConfig(alertChannelFields, channelEnv),
});
const url = await app.listen({ host: '127.0.0.1', port: 0 });
t.teardown(() => app.close());
const secrets = ['s3cr3tW3bh00kT0k3n', 'api-w3bh00k-s3cret', smtp.password];

async function call(method: string, path: string, token: string | null = ADMIN_TOKEN, body?: unknown) {
  const res = await fetch(url + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, text, body: text ? JSON.parse(text) : undefined };
}

t.test('POST /api/alerts/test sends through every channel and reports what each answered', async (t) => {
  const res = await call('POST', '/api/alerts/test', ADMIN_TOKEN, { message: 'hello from the test' });
  t.equal(res.status, 200);
  const byChannel = Object.fromEntries(res.body.channels.map((c: { channel: string }) => [c.channel, c]));
  t.match(byChannel.slack, { ok: true, answer: /200 ok/ });
  t.match(byChannel.email, { ok: true, answer: /250/ });
  t.match(byChannel.webhook, { ok: false, permanent: false, answer: /ECONNREFUSED/ });
  t.equal(slack.received.length, 1);
  t.match((slack.received[0] as { text: string }).text, /hello from the test/);
  t.equal(smtp.messages.length, 1);
  t.same(smtp.messages[0]!.to.sort(), ['dev@example.com', 'ops@example.com']);
  for (const s of secrets) t.notOk(res.text.includes(s), `answer hides ${s}`);
  const stored = await sql<{ channel: string; state: string }>`select channel, state from wombat.alert_deliveries where alert_id = ${res.body.alert_id} order by channel`.execute(tdb.db);
  t.same(stored.rows, [{ channel: 'email', state: 'sent' }, { channel: 'slack', state: 'sent' }, { channel: 'webhook', state: 'failed' }]);
});

t.test('POST /api/alerts/test needs the admin token; bad bodies get a 400', async (t) => {
  t.equal((await call('POST', '/api/alerts/test', READ_TOKEN)).status, 403);
  t.equal((await call('POST', '/api/alerts/test', null)).status, 401);
  const bad = await call('POST', '/api/alerts/test', ADMIN_TOKEN, { messsage: 'typo' });
  t.equal(bad.status, 400);
  t.match(bad.body.error.message, /messsage/);
});

t.test('GET /api/alerts lists open alerts first, then recent ones, with delivery state per channel', async (t) => {
  await sql`insert into wombat.engines (id, host, pid, version, heartbeat_interval_ms, enabled) values (gen_random_uuid(), 'test', 1, 'test', 3600000, true)`.execute(tdb.db);
  const runId = randomUUID();
  await sql`
    insert into wombat.runs (id, job, trigger, state, params, error, attempts, started_at, finished_at)
    values (${runId}, 'fetch-candles', 'task', 'failed', '{}', ${JSON.stringify({ code: 'worker_lost', message: 'worker 1234 stopped beating' })}::text::jsonb, 1, now(), now())`.execute(tdb.db);
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: { ...loadConfig(alertFields, { ...channelEnv, ALERT_DAILY_REPORT_TIME: 'off' }), timezone: 'UTC' } });
  t.teardown(() => alerting.stop());
  t.match(await alerting.evaluate(), { opened: 1 });
  await alerting.deliver('slack');
  await alerting.deliver('webhook');

  const res = await call('GET', '/api/alerts', null);
  t.equal(res.status, 200);
  t.equal(res.body.open, 1);
  const [first, second] = res.body.alerts;
  t.match(first, { kind: 'run_lost', state: 'open', severity: 'warning', key: 'run_lost:job:fetch-candles:worker_lost', subject: /fetch-candles run lost with its worker/, details: { count: 1, run_ids: [runId] } });
  const states = Object.fromEntries(first.deliveries.map((d: { channel: string; state: string }) => [d.channel, d.state]));
  t.same(states, { slack: 'sent', email: 'pending', webhook: 'pending' });
  t.match(first.deliveries.find((d: { channel: string }) => d.channel === 'webhook'), { attempts: 1, last_error: /ECONNREFUSED/ });
  t.match(second, { kind: 'test', state: 'resolved' });
  const open = await call('GET', '/api/alerts?state=resolved&kind=test', null);
  t.same(open.body.alerts.map((a: { kind: string }) => a.kind), ['test']);
  t.equal((await call('GET', '/api/alerts?state=closed', null)).status, 400);
  for (const s of secrets) t.notOk(res.text.includes(s), `answer hides ${s}`);
});

t.test('the overview (the dashboard) shows how many runs a grouped alert stands for', async (t) => {
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: { ...loadConfig(alertFields, { ...channelEnv, ALERT_DAILY_REPORT_TIME: 'off' }), timezone: 'UTC' } });
  t.teardown(() => alerting.stop());
  await sql`
    insert into wombat.runs (id, job, trigger, state, params, error, attempts, started_at, finished_at)
    values (${randomUUID()}, 'fetch-candles', 'task', 'failed', '{}', ${JSON.stringify({ code: 'worker_lost', message: 'worker 5678 stopped beating' })}::text::jsonb, 1, now(), now())`.execute(tdb.db);
  await alerting.evaluate();
  const res = await call('GET', '/api/overview', null);
  t.equal(res.status, 200);
  t.match(res.body.alerts, [{ subject: /2 fetch-candles runs lost with their workers/, count: 2, count_more: false }]);

  // Past the alert's cap the count is a lower bound, and the overview says so.
  await sql`
    insert into wombat.runs (id, job, trigger, state, params, error, attempts, started_at, finished_at)
    select gen_random_uuid(), 'fetch-candles', 'task', 'failed', '{}', ${JSON.stringify({ code: 'worker_lost', message: 'worker 5678 stopped beating' })}::text::jsonb, 1, now(), now()
    from generate_series(1, ${DEAD_LETTER_GROUP_CAP})`.execute(tdb.db);
  await alerting.evaluate();
  const many = await call('GET', '/api/overview', null);
  const grouped = (many.body.alerts as { subject: string }[]).filter((a) => /runs lost with their workers/.test(a.subject));
  t.match(grouped, [{ subject: new RegExp(`^more than ${DEAD_LETTER_GROUP_CAP} fetch-candles runs lost`), count: DEAD_LETTER_GROUP_CAP, count_more: true }]);
});

t.test('the OpenAPI document describes the alert routes', async (t) => {
  const doc = await call('GET', '/openapi.json', null);
  t.ok(doc.body.paths['/api/alerts']?.get);
  t.ok(doc.body.paths['/api/alerts/test']?.post);
});

t.test('no secret reached the api log', async (t) => {
  const text = lines.join('');
  t.ok(text.length > 0);
  for (const s of secrets) t.notOk(text.includes(s), `log hides ${s}`);
});
