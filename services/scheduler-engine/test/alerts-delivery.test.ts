import t from 'tap';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { createLogger, loadConfig } from '@wombat/core/platform';
import { alertFields, createAlerting, type AlertingOptions } from '@wombat/core/alerts';
import { closedPort, startFakeHook, startFakeSmtp, startSilentPort } from '@wombat/core/alerts-fakes';
import { createTestDatabase } from '@wombat/core/testing';
import { addSchedule, startTestEngine, testBoss, waitFor } from './helpers.ts';

const tdb = await createTestDatabase(t);
const boss = await testBoss(t, tdb);

function options(env: Record<string, string>): AlertingOptions {
  return {
    ...loadConfig(alertFields, {
      ALERT_EVALUATE_INTERVAL_MS: '100',
      ALERT_DELIVER_INTERVAL_MS: '50',
      ALERT_RETRY_BASE_MS: '100',
      ALERT_RETRY_MAX_MS: '400',
      ALERT_DAILY_REPORT_TIME: 'off',
      ALERT_CHANNEL_TIMEOUT_MS: '1000',
      ALERT_QUEUE_LENGTH_WARNING: '2',
      ALERT_QUEUE_LENGTH_CRITICAL: '100',
      ...env,
    }),
    timezone: 'UTC',
  };
}

/** A logger whose every line is kept, to look for secrets in. */
function capturedLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { log: createLogger({ name: 'test', level: 'debug', format: 'json', destination }), text: () => lines.join('') };
}

async function reset() {
  await sql`truncate wombat.alerts, wombat.alert_deliveries, wombat.alert_counters, wombat.runs, wombat.engines`.execute(tdb.db);
  await sql`delete from pgboss.job`.execute(tdb.db);
  // A live engine row, so that "no live engine" stays quiet in these tests.
  await sql`insert into wombat.engines (id, host, pid, version, heartbeat_interval_ms, enabled) values (gen_random_uuid(), 'test', 1, 'test', 3600000, true)`.execute(tdb.db);
}

t.test('a flapping threshold produces one alert and one resolved message', async (t) => {
  await reset();
  const slack = await startFakeHook(t);
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ SLACK_WEBHOOK_URL: slack.url, ALERT_RESOLVE_AFTER_MS: '1500' }) });
  t.teardown(() => alerting.stop());
  const fill = async () => {
    for (let i = 0; i < 3; i++) await boss.send('canary', {});
  };
  const drain = () => sql`delete from pgboss.job where name = 'canary'`.execute(tdb.db);
  await fill();
  t.match(await alerting.evaluate(), { opened: 1 });
  for (let i = 0; i < 3; i++) {
    await drain();
    t.match(await alerting.evaluate(), { opened: 0, resolved: 0 }, 'clear, within the clear period');
    await fill();
    t.match(await alerting.evaluate(), { opened: 0, resolved: 0 }, 'back: the same alert');
  }
  await drain();
  await alerting.evaluate();
  t.ok(await waitFor(async () => (await alerting.evaluate())?.resolved === 1, 20_000, 200), 'resolves once clear for long enough');
  t.ok(await waitFor(async () => (await alerting.deliver('slack'), slack.received.length >= 2), 10_000));
  const texts = slack.received.map((m) => (m as { text: string }).text);
  t.equal(texts.length, 2, 'two Slack messages in all');
  t.match(texts[0], /WARNING: queue canary has 3 jobs waiting/);
  t.match(texts[1], /RESOLVED: queue canary/);
  const rows = await sql<{ state: string }>`select state from wombat.alerts where kind = 'queue_length'`.execute(tdb.db);
  t.same(rows.rows, [{ state: 'resolved' }], 'one alert row');
});

t.test('dead channels (timeout, connection refused, 500) delay neither another channel nor scheduling, and are retried', async (t) => {
  await reset();
  const slack = await startFakeHook(t);
  slack.mode = 'hang';
  const refusedPort = await closedPort();
  const smtp = await startFakeSmtp(t);
  const { log, text } = capturedLogger();
  const webhookUrl = `http://127.0.0.1:${refusedPort}/hooks/wombat-w3bh00k-s3cret`;
  const alerting = createAlerting({
    db: tdb.db,
    log,
    options: options({
      SLACK_WEBHOOK_URL: slack.url,
      ALERT_WEBHOOK_URL: webhookUrl,
      SMTP_URL: smtp.url,
      ALERT_EMAIL_FROM: 'wombat@example.com',
      ALERT_EMAIL_TO: 'ops@example.com',
      ALERT_CHANNEL_TIMEOUT_MS: '3000',
    }),
  });
  t.teardown(() => alerting.stop());
  const engine = await startTestEngine(t, tdb, boss);
  const schedule = await addSchedule(tdb, { name: 'every-second', job: 'canary', every: '1s', overlap: 'allow' });
  alerting.start();

  for (let i = 0; i < 3; i++) await boss.send('canary', {});
  t.ok(await waitFor(async () => smtp.messages.length === 1, 20_000), 'the e-mail goes out');
  t.equal(slack.received.length, 0, 'while Slack has not answered');
  const published = async () => Number((await sql<{ n: string }>`select count(*) as n from wombat.runs where schedule_id = ${schedule.id}`.execute(tdb.db)).rows[0]!.n);
  const before = await published();
  t.ok(await waitFor(async () => (await published()) >= before + 2, 20_000), 'the engine keeps publishing while Slack hangs');
  t.ok(
    await waitFor(async () => {
      const r = await sql<{ attempts: number; last_error: string | null }>`select attempts, last_error from wombat.alert_deliveries where channel = 'webhook'`.execute(tdb.db);
      return (r.rows[0]?.attempts ?? 0) >= 2 && /ECONNREFUSED/.test(r.rows[0]?.last_error ?? '');
    }, 20_000),
    'the refused webhook is retried',
  );
  t.ok(
    await waitFor(async () => {
      const r = await sql<{ last_error: string | null }>`select last_error from wombat.alert_deliveries where channel = 'slack'`.execute(tdb.db);
      return /no answer within 3000 ms/.test(r.rows[0]?.last_error ?? '');
    }, 20_000),
    'the hanging Slack attempt times out',
  );

  // The channels come back: each message is sent once.
  slack.mode = 'ok';
  const webhook = await startFakeHook(t, '/hooks/wombat-w3bh00k-s3cret', refusedPort);
  const about = (received: unknown[]) => received.filter((m) => (m as { key?: string; text?: string }).key === 'queue_length:canary' || /queue canary/.test((m as { text?: string }).text ?? ''));
  t.ok(await waitFor(async () => about(slack.received).length === 1 && about(webhook.received).length === 1, 30_000), 'Slack and the webhook get it once they answer');
  const deliveries = () => sql<{ channel: string; state: string; attempts: number }>`
    select d.channel, d.state, d.attempts from wombat.alert_deliveries d join wombat.alerts a on a.id = d.alert_id
    where a.key = 'queue_length:canary' and d.event = 'opened' order by d.channel`.execute(tdb.db);
  // The receiver has the message a moment before the sender records its answer.
  await waitFor(async () => (await deliveries()).rows.every((r) => r.state === 'sent'), 10_000);
  const rows = await deliveries();
  t.same(rows.rows.map((r) => [r.channel, r.state]), [['email', 'sent'], ['slack', 'sent'], ['webhook', 'sent']], 'each channel sent the alert once');
  t.ok(rows.rows.find((r) => r.channel === 'webhook')!.attempts >= 2);
  t.match(about(webhook.received)[0], { kind: 'queue_length', severity: 'warning', event: 'opened' }, 'the webhook gets the alert as JSON');
  const kinds = await sql<{ kind: string }>`select distinct kind from wombat.alerts`.execute(tdb.db);
  t.comment(`alerts raised meanwhile: ${kinds.rows.map((k) => k.kind).join(', ')}`);
  await alerting.stop();
  await engine.stop();
  const logs = text();
  t.match(logs, /alert delivery failed; will retry/);
  for (const secret of ['s3cr3tW3bh00kT0k3n', 'wombat-w3bh00k-s3cret', smtp.password]) t.notOk(logs.includes(secret), `${secret} is not logged`);
  const stored = await sql<{ t: string }>`select coalesce(string_agg(coalesce(last_error, '') || coalesce(response, ''), ' '), '') as t from wombat.alert_deliveries`.execute(tdb.db);
  t.notOk(stored.rows[0]!.t.includes('s3cr3t'), 'nor stored with the deliveries');
});

t.test('a 500 is retried with back-off until the channel answers; a silent SMTP server times out', async (t) => {
  await reset();
  const slack = await startFakeHook(t);
  slack.mode = 'error500';
  const silent = await startSilentPort(t);
  const alerting = createAlerting({
    db: tdb.db,
    log: tdb.log,
    options: options({ SLACK_WEBHOOK_URL: slack.url, SMTP_URL: `smtp://alerts:pw-s3cret@127.0.0.1:${silent}`, ALERT_EMAIL_FROM: 'a@example.com', ALERT_EMAIL_TO: 'b@example.com' }),
  });
  t.teardown(() => alerting.stop());
  alerting.start();
  for (let i = 0; i < 3; i++) await boss.send('canary', {});
  t.ok(await waitFor(async () => slack.attempts >= 3, 20_000), 'Slack is tried again after 500s');
  slack.mode = 'ok';
  t.ok(await waitFor(async () => slack.received.length === 1, 20_000), 'and gets the message once it answers');
  t.ok(
    await waitFor(async () => {
      const r = await sql<{ last_error: string | null; state: string }>`select last_error, state from wombat.alert_deliveries where channel = 'email'`.execute(tdb.db);
      return r.rows[0]?.state === 'pending' && /timeout|ETIMEDOUT|Greeting never received/i.test(r.rows[0]?.last_error ?? '');
    }, 20_000),
    'the silent SMTP server fails the attempt at its deadline and stays due for a retry',
  );
  const failures = await sql<{ label: string; value: number }>`select label, value from wombat.alert_counters where name = 'delivery_failures' order by label`.execute(tdb.db);
  t.ok(failures.rows.find((r) => r.label === 'slack')!.value >= 2, 'failed attempts are counted per channel');
});

t.test('a channel that was down gets an alert and its RESOLVED in order', async (t) => {
  await reset();
  const slack = await startFakeHook(t);
  slack.mode = 'error500';
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ SLACK_WEBHOOK_URL: slack.url, ALERT_RESOLVE_AFTER_MS: '0', ALERT_RETRY_BASE_MS: '600000', ALERT_RETRY_MAX_MS: '600000' }) });
  t.teardown(() => alerting.stop());
  for (let i = 0; i < 3; i++) await boss.send('canary', {});
  t.match(await alerting.evaluate(), { opened: 1 });
  await alerting.deliver('slack'); // fails: the opened message waits for its retry
  await sql`delete from pgboss.job where name = 'canary'`.execute(tdb.db);
  t.match(await alerting.evaluate(), { resolved: 1 });
  t.equal(await alerting.deliver('slack'), 0, 'the RESOLVED waits behind the opened message');
  slack.mode = 'ok';
  // The retry time comes (ten minutes, not waited for here).
  await sql`update wombat.alert_deliveries set next_attempt_at = now() where state = 'pending'`.execute(tdb.db);
  t.ok(await waitFor(async () => (await alerting.deliver('slack'), slack.received.length === 2), 10_000, 100));
  const texts = slack.received.map((m) => (m as { text: string }).text);
  t.match(texts[0], /WARNING: queue canary/);
  t.match(texts[1], /RESOLVED: queue canary/);
});

t.test('with no channel configured alerts are recorded, not sent, and that is said once', async (t) => {
  await reset();
  const { log, text } = capturedLogger();
  const alerting = createAlerting({ db: tdb.db, log, options: options({}) });
  t.same(alerting.channels, []);
  for (let i = 0; i < 3; i++) await boss.send('canary', {});
  t.match(await alerting.evaluate(), { opened: 1 });
  await alerting.evaluate();
  await alerting.stop();
  const alerts = await sql<{ kind: string; state: string }>`select kind, state from wombat.alerts`.execute(tdb.db);
  t.same(alerts.rows, [{ kind: 'queue_length', state: 'open' }], 'recorded');
  const deliveries = await sql<{ n: number }>`select count(*)::int as n from wombat.alert_deliveries`.execute(tdb.db);
  t.equal(deliveries.rows[0]!.n, 0, 'nothing to send');
  t.equal(text().split('no alert channel configured').length - 1, 1, 'said once');
});
