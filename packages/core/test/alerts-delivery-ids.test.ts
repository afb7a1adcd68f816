import t from 'tap';
import { sql } from 'kysely';
import { loadConfig } from '@wombat/core/platform';
import { alertFields, claimDeliveries, createAlerting, markDeliverySent, type AlertingOptions } from '@wombat/core/alerts';
import { startFakeHook, startFakeSmtp } from '@wombat/core/alerts-fakes';
import { createTestDatabase } from '@wombat/core/testing';

/** Delivery is at-least-once: every delivery carries a stable id a receiver can drop repeats by. */
const tdb = await createTestDatabase(t);

function options(env: Record<string, string> = {}): AlertingOptions {
  return { ...loadConfig(alertFields, { ALERT_DAILY_REPORT_TIME: 'off', ALERT_RESOLVE_AFTER_MS: '0', ALERT_DEAD_LETTERS_WARNING: '1000', ALERT_DEAD_LETTERS_CRITICAL: '1000', ...env }), timezone: 'UTC' };
}

async function reset() {
  await sql`truncate wombat.alerts, wombat.alert_deliveries, wombat.alert_counters, wombat.runs, wombat.engines`.execute(tdb.db);
  await sql`delete from wombat.schedules`.execute(tdb.db);
  await sql`insert into wombat.engines (id, host, pid, version, heartbeat_interval_ms, enabled) values (gen_random_uuid(), 'test', 1, 'test', 3600000, true)`.execute(tdb.db);
}

async function failRun(schedule: string) {
  const r = await sql<{ id: number }>`insert into wombat.schedules (name, job, kind, every, every_seconds) values (${schedule}, 'canary', 'every', '1h', 3600) returning id`.execute(tdb.db);
  await sql`insert into wombat.runs (id, job, trigger, schedule_id, state, params, attempts, started_at, finished_at)
            values (gen_random_uuid(), 'canary', 'schedule', ${r.rows[0]!.id}, 'failed', '{}', 1, now(), now())`.execute(tdb.db);
}

t.test('a message sent again after a crash carries the same delivery id: webhook body, Slack ref, e-mail Message-ID', async (t) => {
  await reset();
  const webhook = await startFakeHook(t, '/hooks/wombat');
  const slack = await startFakeHook(t);
  const smtp = await startFakeSmtp(t);
  const alerting = createAlerting({
    db: tdb.db,
    log: tdb.log,
    options: options({ SLACK_WEBHOOK_URL: slack.url, ALERT_WEBHOOK_URL: webhook.url, SMTP_URL: smtp.url, ALERT_EMAIL_FROM: 'wombat@alerts.example.com', ALERT_EMAIL_TO: 'ops@example.com' }),
  });
  t.teardown(() => alerting.stop());
  await failRun('nightly');
  t.match(await alerting.evaluate(), { opened: 1 });
  const sendAll = async () => {
    for (const c of ['webhook', 'slack', 'email'] as const) await alerting.deliver(c);
  };
  await sendAll();
  // The crash: each channel accepted the message, the sender died before recording it; its lease passes.
  await sql`update wombat.alert_deliveries set state = 'sending', sent_at = null, lease_until = now() - interval '1 second'`.execute(tdb.db);
  await sendAll();

  const bodies = webhook.received as { delivery_id: string; event: string }[];
  t.equal(bodies.length, 2, 'the webhook got the message twice (at-least-once)');
  t.match(bodies[0]!.delivery_id, /^wombat-delivery-\d+$/);
  t.equal(bodies[1]!.delivery_id, bodies[0]!.delivery_id, 'with the same delivery id');
  const texts = (slack.received as { text: string }[]).map((m) => m.text);
  t.equal(texts.length, 2);
  const ref = /ref (wombat-delivery-\d+)/.exec(texts[0]!)?.[1];
  t.ok(ref, 'the Slack text names its delivery');
  t.match(texts[1], `ref ${ref}`, 'and the repeat names the same one');
  t.equal(smtp.messages.length, 2);
  const ids = smtp.messages.map((m) => /^Message-ID: (.*)$/im.exec(m.raw)?.[1]?.trim());
  t.match(ids[0], /^<wombat-delivery-\d+@alerts\.example\.com>$/);
  t.equal(ids[1], ids[0], 'the e-mail repeat has the same Message-ID');
  const all = new Set([bodies[0]!.delivery_id, ref, ids[0]!.slice(1, ids[0]!.indexOf('@'))]);
  t.equal(all.size, 3, 'each channel\'s copy is a delivery of its own');
});

t.test('a sender whose lease passed records nothing: the one that took the message over does', async (t) => {
  await reset();
  const webhook = await startFakeHook(t, '/hooks/wombat');
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: options({ ALERT_WEBHOOK_URL: webhook.url }) });
  t.teardown(() => alerting.stop());
  await failRun('hourly');
  await alerting.evaluate();
  const [first] = await claimDeliveries(tdb.db, 'webhook', 60_000, 10);
  t.ok(first, 'claimed');
  await sql`update wombat.alert_deliveries set lease_until = now() - interval '1 second' where id = ${first!.id}`.execute(tdb.db);
  const [second] = await claimDeliveries(tdb.db, 'webhook', 60_000, 10);
  t.equal(second?.id, first!.id, 'another sender takes it over once the lease passed');
  t.equal(await markDeliverySent(tdb.db, first!.id, 'webhook', '200 ok', first!.attempts), false, 'the first sender\'s late mark is refused');
  const row = await sql<{ state: string }>`select state from wombat.alert_deliveries where id = ${first!.id}`.execute(tdb.db);
  t.equal(row.rows[0]!.state, 'sending', 'the message stays with the sender that holds it');
  t.equal(await markDeliverySent(tdb.db, second!.id, 'webhook', '200 ok', second!.attempts), true);
});

t.test('a RESOLVED goes only where the alert\'s OPENED went', async (t) => {
  await reset();
  const webhook = await startFakeHook(t, '/hooks/wombat');
  await failRun('a');
  await failRun('b');
  // Opened in a storm: one OPENED, the other alert only in the summary.
  const storm = createAlerting({ db: tdb.db, log: tdb.log, options: options({ ALERT_WEBHOOK_URL: webhook.url, ALERT_RUN_BURST: '1' }) });
  t.teardown(() => storm.stop());
  t.match(await storm.evaluate(), { opened: 2 });
  await sql`update wombat.runs set requeued_as = gen_random_uuid()`.execute(tdb.db);
  const calm = createAlerting({ db: tdb.db, log: tdb.log, options: options({ ALERT_WEBHOOK_URL: webhook.url, ALERT_RUN_BURST: '10' }) });
  t.teardown(() => calm.stop());
  t.match(await calm.evaluate(), { resolved: 2 });
  await calm.deliver('webhook');
  const events = (webhook.received as { event: string; kind: string; alert_id: number }[]).map((m) => `${m.kind}:${m.event}`);
  t.same(events, ['run_failed:opened', 'run_failed_burst:opened', 'run_failed:resolved'], 'one OPENED, the summary, and the RESOLVED of the alert that was OPENED');
  const [opened, , resolved] = webhook.received as { alert_id: number }[];
  t.equal(resolved!.alert_id, opened!.alert_id);
});
