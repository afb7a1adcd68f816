import t from 'tap';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { sql } from 'kysely';
import { startBoss } from '@wombat/core/platform';
import { publishRun } from '@wombat/core/runs';
import { startFakeHook, startFakeSmtp } from '@wombat/core/alerts-fakes';
import { createTestDatabase } from '@wombat/core/testing';
import { waitFor } from './helpers.ts';

// The two cases have a database, fake channels and processes each, and spend most of
// their time waiting on intervals and a lease: they run side by side.
t.jobs = 2;

const main = path.resolve(import.meta.dirname, '../src/main.ts');
const workerMain = path.resolve(import.meta.dirname, '../../worker/src/main.ts');

function startEngine(t: { teardown(fn: () => unknown): void }, env: Record<string, string>, script = main) {
  const child = spawn(process.execPath, [script], { env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, exited, output: () => out };
}

t.test('a permanent failure produces exactly one Slack message and one e-mail with two engines running', async (t) => {
  const tdb = await createTestDatabase(t);
  const slack = await startFakeHook(t);
  const smtp = await startFakeSmtp(t);
  const env = {
    DATABASE_URL: tdb.url,
    SHUTDOWN_TIMEOUT_MS: '5000',
    LOG_LEVEL: 'debug',
    SLACK_WEBHOOK_URL: slack.url,
    SMTP_URL: smtp.url,
    ALERT_EMAIL_FROM: 'wombat@example.com',
    ALERT_EMAIL_TO: 'ops@example.com',
    ALERT_EVALUATE_INTERVAL_MS: '150',
    ALERT_DELIVER_INTERVAL_MS: '100',
    ALERT_DAILY_REPORT_TIME: 'off',
    // One worker serves canary here: the worker-count condition stays quiet (it has tests of its own).
    ALERT_WORKERS_WARNING: '0',
  };
  const engines = [startEngine(t, env), startEngine(t, env)];
  t.ok(await waitFor(async () => engines.every((e) => e.output().includes('alerting started')), 30_000), 'both engines evaluate alerts');

  // A real worker fails a steered canary for good.
  const worker = startEngine(t, { DATABASE_URL: tdb.url, SHUTDOWN_TIMEOUT_MS: '5000', WORKER_QUEUES: 'canary' }, workerMain);
  const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 2 });
  t.teardown(() => boss.stop({ graceful: false, close: true }));
  const runId = randomUUID();
  await publishRun(tdb.db, boss, { id: runId, job: 'canary', params: { fail: 'permanent' }, trigger: 'manual' });
  t.ok(
    await waitFor(async () => (await sql<{ state: string }>`select state from wombat.runs where id = ${runId}`.execute(tdb.db)).rows[0]?.state === 'failed', 30_000),
    'the worker failed the run for good',
  );

  t.ok(await waitFor(async () => slack.received.length >= 1 && smtp.messages.length >= 1, 30_000), 'Slack and e-mail received the alert');
  // Many more evaluation passes by both engines: still one of each.
  const passes = async () => Number((await sql<{ n: string }>`select count(*) as n from wombat.alerts`.execute(tdb.db)).rows[0]!.n);
  await new Promise((r) => setTimeout(r, 2_000));
  t.equal(slack.received.length, 1, 'one Slack message');
  t.equal(smtp.messages.length, 1, 'one e-mail');
  t.equal(await passes(), 1, 'one alert row');
  const text = (slack.received[0] as { text: string }).text;
  t.match(text, /canary run failed for good/);
  t.match(text, new RegExp(runId));
  t.match(text, /canary was asked to fail permanently/);
  t.match(text, /failed after 1 attempt/, 'a permanent error is not retried');
  t.match(smtp.messages[0]!.subject, /CRITICAL|WARNING/);
  t.same(smtp.messages[0]!.to, ['ops@example.com']);
  t.match(smtp.messages[0]!.raw, new RegExp(runId));
  const deliveries = await sql<{ channel: string; state: string }>`select channel, state from wombat.alert_deliveries order by channel`.execute(tdb.db);
  t.same(deliveries.rows, [{ channel: 'email', state: 'sent' }, { channel: 'slack', state: 'sent' }]);

  worker.child.kill('SIGTERM');
  t.equal(await worker.exited, 0, 'worker stops cleanly');
  for (const e of engines) e.child.kill('SIGTERM');
  for (const e of engines) t.equal(await e.exited, 0, 'engine stops cleanly');
  const logs = engines.map((e) => e.output()).join('\n');
  t.match(logs, /alert sent/, 'the engines logged the delivery');
  t.notOk(logs.includes('s3cr3tW3bh00kT0k3n'), 'the Slack webhook secret is not logged');
  t.notOk(logs.includes(smtp.password), 'the SMTP password is not logged');
});

t.test('an engine SIGKILLed while sending: another takes the message over once its lease passes, and sends it once', async (t) => {
  const tdb = await createTestDatabase(t);
  const slack = await startFakeHook(t);
  slack.mode = 'hang';
  const env = {
    DATABASE_URL: tdb.url,
    SHUTDOWN_TIMEOUT_MS: '5000',
    SLACK_WEBHOOK_URL: slack.url,
    ALERT_EVALUATE_INTERVAL_MS: '150',
    ALERT_DELIVER_INTERVAL_MS: '100',
    // The first engine is killed well within this deadline of its send; the lease it
    // leaves on the message is twice this plus 5 s.
    ALERT_CHANNEL_TIMEOUT_MS: '2000',
    ALERT_DAILY_REPORT_TIME: 'off',
  };
  const first = startEngine(t, env);
  t.ok(await waitFor(async () => first.output().includes('alerting started'), 30_000));
  await sql`
    insert into wombat.runs (id, job, trigger, state, params, error, attempts, started_at, finished_at)
    values (${randomUUID()}, 'fetch-candles', 'fanout', 'failed', '{}', ${JSON.stringify({ code: 'worker_lost', message: 'worker stopped beating' })}::text::jsonb, 1, now(), now())`.execute(tdb.db);
  t.ok(await waitFor(async () => slack.attempts >= 1, 30_000), 'the first engine is sending');
  first.child.kill('SIGKILL');
  await first.exited;
  const state = await sql<{ state: string }>`select state from wombat.alert_deliveries`.execute(tdb.db);
  t.same(state.rows, [{ state: 'sending' }], 'the message was left mid-send');
  slack.mode = 'ok';
  const second = startEngine(t, env);
  t.ok(await waitFor(async () => slack.received.length >= 1, 60_000), 'the second engine sends it after the lease');
  await new Promise((r) => setTimeout(r, 1_000));
  t.equal(slack.received.length, 1, 'once');
  t.match((slack.received[0] as { text: string }).text, /fetch-candles run lost with its worker/);
  const rows = await sql<{ state: string; attempts: number }>`select state, attempts from wombat.alert_deliveries`.execute(tdb.db);
  t.match(rows.rows, [{ state: 'sent', attempts: 2 }]);
  const alerts = await sql<{ n: number }>`select count(*)::int as n from wombat.alerts`.execute(tdb.db);
  t.equal(alerts.rows[0]!.n, 1, 'the restarted evaluator did not raise it again');
  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0);
});
