import t from 'tap';
import { createErrorReporter, errorReportingFields, loadConfig, NO_ERROR_REPORTER, scrubEvent, scrubText, secretValues } from '@wombat/core/platform';
import { startSentryReceiver, testLogger } from '@wombat/core/testing';

/**
 * The Sentry reporter against a local receiver that decodes the envelopes @sentry/node sends: what
 * an event carries, and that no secret leaves in one. The services' own reports (uncaught errors,
 * failed and lost runs, nothing loaded without SENTRY_DSN) are in deploy/test/error-reporting.test.ts.
 */
const ADMIN = 'admin-token-for-sentry-tests-0123456789';
const KIS_SECRET = 'kis-app-secret-abcdef123456';

t.test('text and events lose their credentials, by value, by form and by key', async (t) => {
  const secrets = secretValues({ API_ADMIN_TOKEN: ADMIN, KIS_APP_SECRET: KIS_SECRET, API_PORT: '8000', REDDIT_CLIENT_ID: 'short', UPBIT_BASE_URL: 'https://api.upbit.com' });
  t.same(secrets, [ADMIN, KIS_SECRET], 'secret-named variables only, none too short to be a credential');
  t.equal(scrubText(`token ${ADMIN} and ${KIS_SECRET}`, secrets), 'token [redacted] and [redacted]');
  t.equal(scrubText('connect to postgres://wombat:hunter2@db:5432/w failed', []), 'connect to postgres://wombat:[redacted]@db:5432/w failed');
  t.equal(scrubText('sent Authorization: Bearer abc.def-123456', []), 'sent Authorization: Bearer [redacted]');
  t.equal(scrubText('GET /x?token=abc123&page=2 password: "p@ss"', []), 'GET /x?token=[redacted]&page=2 password: "[redacted]"');
  t.equal(scrubText('https://api.upbit.com/v1/candles?market=KRW-BTC', []), 'https://api.upbit.com/v1/candles?market=KRW-BTC', 'ordinary text is left alone');

  const event = {
    message: 'failed at https://user:pw@example.com/a',
    request: { headers: { Authorization: 'Basic dXNlcjpwYXNz', Cookie: 'sid=1', 'user-agent': 'curl/8' } },
    extra: { adminToken: 'x', nested: [{ password: 'p', smtpUrl: 'smtp://a:b@c', note: `key ${KIS_SECRET}` }], count: 3 },
  };
  t.same(scrubEvent(event, secrets), {
    message: 'failed at https://user:[redacted]@example.com/a',
    request: { headers: { Authorization: '[redacted]', Cookie: '[redacted]', 'user-agent': 'curl/8' } },
    extra: { adminToken: '[redacted]', nested: [{ password: '[redacted]', smtpUrl: '[redacted]', note: 'key [redacted]' }], count: 3 },
  });
  t.equal(event.extra.adminToken, 'x', 'the original is not changed');
});

t.test('SENTRY_DSN must be a DSN; release and environment have defaults', async (t) => {
  const config = loadConfig(errorReportingFields, {});
  t.equal(config.sentryDsn, undefined);
  t.equal(config.sentryEnvironment, 'production');
  t.match(config.sentryRelease, /^wombat@\d+\.\d+\.\d+/);
  t.throws(() => loadConfig(errorReportingFields, { SENTRY_DSN: 'not a dsn' }), { message: /SENTRY_DSN=\(value hidden\): must be a DSN like https:\/\/<key>@o1\.ingest\.sentry\.io\/<project>/ });
  t.throws(() => loadConfig(errorReportingFields, { SENTRY_DSN: 'https://o1.ingest.sentry.io/42' }), { message: /must be a DSN/ }, 'a DSN names its key');
});

t.test('without a DSN the reporter is the one that does nothing', async (t) => {
  t.equal(await createErrorReporter({ dsn: undefined, service: 'x', environment: 'e', release: 'r', env: {}, log: testLogger() }), NO_ERROR_REPORTER);
});

t.test('uncaught errors and failed runs reach the receiver, tagged, with secrets scrubbed', async (t) => {
  const receiver = await startSentryReceiver();
  t.teardown(() => receiver.close());
  const reporter = await createErrorReporter({
    dsn: receiver.dsn,
    service: 'worker',
    environment: 'staging',
    release: 'wombat@9.9.9',
    env: { API_ADMIN_TOKEN: ADMIN, KIS_APP_SECRET: KIS_SECRET },
    log: testLogger(),
  });
  t.equal(reporter.enabled, true);
  reporter.uncaught(new Error(`db down: postgres://wombat:hunter2@db/w (token ${ADMIN})`), 'uncaught exception');
  const failure = Object.assign(new Error(`KIS refused app secret ${KIS_SECRET}`), { code: 'kis_auth' });
  reporter.runFailed({ job: 'fetch-candles', runId: '00000000-0000-4000-8000-000000000001', attempt: 3, scheduleId: 7, scheduleName: 'hourly-btc', error: failure });
  reporter.runFailed({ job: 'fetch-candles', runId: '00000000-0000-4000-8000-000000000002', attempt: 1, scheduleId: null, scheduleName: null, error: { code: 'worker_lost', message: 'the worker was lost' } });
  t.equal(await reporter.close(5000), true, 'everything sent');

  const events = receiver.events();
  t.equal(events.length, 3);
  const [uncaught, failed, lost] = events;
  t.match(uncaught, { level: 'fatal', release: 'wombat@9.9.9', environment: 'staging', tags: { service: 'worker', reason: 'uncaught exception' } });
  t.match(uncaught!.exception!.values.at(-1), { type: 'Error', value: 'db down: postgres://wombat:[redacted]@db/w (token [redacted])', stacktrace: { frames: Array } });
  t.match(failed, {
    level: 'error',
    tags: { service: 'worker', job: 'fetch-candles', run_id: '00000000-0000-4000-8000-000000000001', attempt: '3', schedule: 'hourly-btc', error_code: 'kis_auth' },
    contexts: { run: { run_id: '00000000-0000-4000-8000-000000000001', job: 'fetch-candles', attempt: 3, schedule_id: 7, schedule: 'hourly-btc' } },
    fingerprint: ['run-failed', 'fetch-candles', 'kis_auth'],
  });
  t.equal(failed!.exception!.values.at(-1)!.value, 'KIS refused app secret [redacted]');
  t.match(lost, { tags: { schedule: 'none', error_code: 'worker_lost', attempt: '1' }, exception: { values: [{ value: 'the worker was lost' }] } });

  for (const e of receiver.envelopes) {
    const payloads = JSON.stringify(e.items.map((i) => i.payload));
    for (const secret of [ADMIN, KIS_SECRET, 'hunter2', receiver.dsn]) t.notOk(payloads.includes(secret), `no ${secret.slice(0, 12)}... in an event`);
  }
});
