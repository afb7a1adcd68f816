/**
 * SENTRY_DSN, service by service: the real engine, worker and api processes report to a local
 * receiver that decodes Sentry's envelopes. Without a DSN, a preloaded hook that fails every
 * import of a Sentry module shows that none is loaded.
 */
import t from 'tap';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBoss } from '@wombat/core/platform';
import { insertSchedule, validateScheduleInput } from '@wombat/core/schedules';
import { triggerSchedule } from '@wombat/core/runs';
import { createTestDatabase, startSentryReceiver } from '@wombat/core/testing';
import { startProcess, until, type ServiceProcess } from '../outage-harness.ts';

t.setTimeout(600_000);
const root = path.resolve(import.meta.dirname, '../..');
const fixtures = path.join(root, 'packages/core/test/fixtures');
const FORBID_SENTRY = path.join(fixtures, 'forbid-sentry.ts');
const THROW_ON_SIGNAL = path.join(fixtures, 'throw-on-signal.ts');
const ADMIN = 'admin-token-for-sentry-tests-0123456789';

/** What each service logs once it has started. */
const SERVICES = {
  api: { ready: '"api listening"' },
  worker: { ready: '"worker started"' },
  'scheduler-engine': { ready: '"engine started"' },
} as const;
type Service = keyof typeof SERVICES;

const tdb = await createTestDatabase(t);
const receiver = await startSentryReceiver();
t.teardown(() => receiver.close());
const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 2 });
t.teardown(() => boss.stop({ graceful: false, close: true }));

/** Starts a service (its sources, or `main`) with `preload` modules; resolves once it logged its start, or exited. */
async function start(service: Service, env: Record<string, string>, o: { preload?: string[]; main?: string } = {}): Promise<ServiceProcess> {
  const p = startProcess(
    service,
    { DATABASE_URL: tdb.url, API_PORT: '0', API_ADMIN_TOKEN: ADMIN, LOG_FORMAT: 'json', LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_MS: '5000', ...env },
    { nodeArgs: (o.preload ?? []).flatMap((m) => ['--import', m]), ...(o.main ? { main: o.main } : {}) },
  );
  t.teardown(async () => {
    if (p.alive()) p.child.kill('SIGKILL');
    await p.exited;
  });
  await until(`${service} to start`, () => p.output().includes(SERVICES[service].ready) || !p.alive(), 60_000, []);
  return p;
}

t.test('without SENTRY_DSN no service loads a Sentry module', async (t) => {
  const runs: [Service, string | undefined][] = [
    ['api', undefined],
    ['worker', undefined],
    ['scheduler-engine', undefined],
    // What systemd runs: the build, which keeps @sentry/* outside the bundle.
    ['api', 'services/api/dist/main.mjs'],
  ];
  // Side by side: each start is a second or more of module loading.
  const started = await Promise.all(runs.map(([service, main]) => start(service, { WORKER_QUEUES: 'canary' }, { preload: [FORBID_SENTRY], ...(main ? { main } : {}) })));
  for (const [i, p] of started.entries()) {
    const [service, main] = runs[i]!;
    t.ok(p.output().includes(SERVICES[service].ready), `${main ?? service} started under the hook`);
    p.child.kill('SIGTERM');
    t.same(await p.exited, { code: 0, signal: null }, `${main ?? service} stopped cleanly`);
    t.notMatch(p.output(), /forbidden import/);
  }
  // The hook does catch an import: with a DSN the same start fails on it.
  const withDsn = await start('api', { SENTRY_DSN: receiver.dsn }, { preload: [FORBID_SENTRY] });
  t.match(await withDsn.exited, { code: 1 });
  t.match(withDsn.output(), /forbidden import of @sentry\/node/);
});

t.test('an uncaught error in each service is reported, tagged and scrubbed, before the service exits 1', async (t) => {
  const services = Object.keys(SERVICES) as Service[];
  const started = await Promise.all(services.map((service) => start(service, { SENTRY_DSN: receiver.dsn, SENTRY_ENVIRONMENT: 'switch-test', WORKER_QUEUES: 'canary' }, { preload: [THROW_ON_SIGNAL] })));
  for (const [i, p] of started.entries()) {
    const service = services[i]!;
    p.child.kill('SIGUSR2');
    t.match(await p.exited, { code: 1 }, `${service} exits 1`);
    const event = await receiver.waitForEvent((e) => e.tags?.service === service && e.level === 'fatal');
    t.match(event, { release: /^wombat@\d+\.\d+\.\d+/, environment: 'switch-test', tags: { reason: 'uncaught exception' } }, `${service}: release, environment, reason`);
    const value = event.exception!.values.at(-1)!.value!;
    t.match(value, /^boom on request: admin token \[redacted\], postgres:\/\/wombat:\[redacted\]@db\.internal:5432\/wombat, Authorization: Bearer \[redacted\], \?token=\[redacted\]$/, `${service}: secrets scrubbed`);
  }
  const everything = receiver.envelopes.map((e) => JSON.stringify(e.items)).join('\n');
  for (const secret of [ADMIN, 'hunter2-secret', 'abcdefghijklmnop', 'qwertyuiop12']) t.notOk(everything.includes(secret), `${secret} was sent nowhere`);
});

async function pausedSchedule(name: string, job: string, extra: Record<string, unknown>) {
  // Paused: the engine never publishes it on its own; only the test's trigger runs it.
  const def = validateScheduleInput({ name, job, every: '1d', status: 'paused', ...extra });
  if (!def.ok) throw new Error(def.problems.join('; '));
  return insertSchedule(tdb.db, def.value);
}

t.test('a run that fails for good is reported by the worker: job, schedule, run id, its last attempt only', async (t) => {
  await start('worker', { SENTRY_DSN: receiver.dsn, WORKER_QUEUES: 'canary', WORKER_POLL_INTERVAL_SECONDS: '0.5' });
  const schedule = await pausedSchedule('failing-canary', 'canary', { params: { fail: true }, max_retries: 1, retry_delay_seconds: 1, retry_backoff: false });
  const runId = (await triggerSchedule(tdb.db, boss, schedule.id))!;
  const event = await receiver.waitForEvent((e) => e.tags?.run_id === runId, 60_000);
  t.match(event, {
    level: 'error',
    tags: { service: 'worker', job: 'canary', run_id: runId, attempt: '2', schedule: 'failing-canary' },
    contexts: { run: { run_id: runId, job: 'canary', attempt: 2, schedule_id: schedule.id, schedule: 'failing-canary' } },
  });
  const [run] = await tdb.sql<{ state: string; attempts: number }[]>`select state, attempts from wombat.runs where id = ${runId}`;
  t.same(run, { state: 'failed', attempts: 2 });
  await sleep(500);
  t.equal(receiver.events().filter((e) => e.tags?.run_id === runId).length, 1, 'the first attempt, retried, was not reported');
});

t.test('a run lost with its worker is reported by the engine that ends it', async (t) => {
  await start('scheduler-engine', { SENTRY_DSN: receiver.dsn, ENGINE_RUN_RECONCILE_INTERVAL_MS: '200' });
  const schedule = await pausedSchedule('lost-symbols', 'collect-symbols', {});
  const runId = (await triggerSchedule(tdb.db, boss, schedule.id))!;
  // No worker serves collect-symbols here: the job vanishing from pg-boss leaves the run to the engine.
  await tdb.sql`delete from pgboss.job where id = ${runId}`;
  const event = await receiver.waitForEvent((e) => e.tags?.run_id === runId, 60_000);
  t.match(event, {
    tags: { service: 'scheduler-engine', job: 'collect-symbols', schedule: 'lost-symbols', error_code: 'worker_lost' },
    contexts: { run: { schedule_id: schedule.id } },
    exception: { values: [{ value: /the job is gone from pg-boss/ }] },
  });
});
