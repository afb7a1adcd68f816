import t from 'tap';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDatabase, createLogger, loadConfig } from '@wombat/core/platform';
import { alertFields, createAlerting } from '@wombat/core/alerts';
import { startFakeHook } from '@wombat/core/alerts-fakes';
import { startPrivatePostgres } from '@wombat/core/testing';

/**
 * A database outage under the alerting loops is reported as that, once, and not
 * as a channel's delivery failing: nothing was sent to the webhook, or tried.
 */
const pg = await startPrivatePostgres(t);
const database = createDatabase({ url: pg.url, poolSize: 2, connectTimeoutMs: 1000, applicationName: 'wombat-test' });
t.teardown(() => database.close());

const lines: string[] = [];
const destination = new Writable({
  write(chunk, _enc, cb) {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    cb();
  },
});
const log = createLogger({ name: 'test', level: 'debug', format: 'json', destination });
const messages = () => lines.map((l) => (JSON.parse(l) as { msg: string }).msg);

async function until(check: () => boolean, ms = 60_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end && !check()) await sleep(20);
  return check();
}

t.test('during a database outage the delivery loop says it waits for the database, once, and says when it resumes', async (t) => {
  const hook = await startFakeHook(t);
  const alerting = createAlerting({
    db: database.db,
    log,
    options: {
      ...loadConfig(alertFields, { ALERT_WEBHOOK_URL: hook.url, ALERT_EVALUATE_INTERVAL_MS: '100', ALERT_DELIVER_INTERVAL_MS: '50', ALERT_DAILY_REPORT_TIME: 'off' }),
      timezone: 'UTC',
    },
  });
  t.teardown(() => alerting.stop());
  alerting.start();
  t.ok(await until(() => messages().includes('alerting started')));

  await pg.stop();
  t.ok(await until(() => messages().includes('alert delivery (webhook) waits: the database is unavailable')), 'the outage is named as such');
  // Twenty more passes of the 50 ms loop, each failing the same way.
  await sleep(1000);
  t.equal(messages().filter((m) => m === 'alert delivery (webhook) waits: the database is unavailable').length, 1, 'said once, not at every pass');
  t.notOk(messages().some((m) => /alert delivery \(webhook\) failed/.test(m)), 'never reported as the webhook failing');
  t.equal(hook.received.length, 0, 'nothing was sent meanwhile');

  await pg.start();
  t.ok(await until(() => messages().includes('alert delivery (webhook) resumed: the database answers again')), 'and it says when the database is back');
});
