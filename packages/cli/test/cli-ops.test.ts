import t from 'tap';
import { randomUUID } from 'node:crypto';
import { startFakeExchange } from '@wombat/collectors/testing';
import { createTestDatabase } from '@wombat/core/testing';
import { startEngine, startWorker, tempDir, wombat, wombatProcess } from './helpers.ts';

/**
 * Every operator subcommand against a real database, with a real engine (started
 * by `wombat engine`) and a real worker process running the jobs.
 */
// Each command is a real process start: generous under a loaded machine.
t.setTimeout(600_000);
const tdb = await createTestDatabase(t);
const fake = await startFakeExchange();
t.teardown(() => fake.close());
const dataRoot = await tempDir(t);
const env = { DATABASE_URL: tdb.url, TZ: 'UTC', DATA_ROOT: dataRoot, UPBIT_BASE_URL: fake.url };

// The engine's alert evaluator runs once at start and then not during these tests: the alert rows
// below are the test's own, and a worker stopped on purpose must not raise one meanwhile.
const engine = await startEngine(t, { ...env, ALERT_EVALUATE_INTERVAL_MS: '600000', ALERT_WORKERS_WARNING: '0', ALERT_DB_CONNECTIONS_WARNING_PCT: '100', ALERT_DB_CONNECTIONS_CRITICAL_PCT: '100' });
const worker = await startWorker(t, { ...env, WORKER_QUEUES: 'canary,fetch-candles,collect-symbols', WORKER_CONCURRENCY: 'canary=3', WORKER_BATCH_SIZE: 'canary=50', WORKER_HEARTBEAT_INTERVAL_MS: '300' });

t.test('status reports engines, queues and dead letters, and judges health by live engines, workers and alerts', async (t) => {
  // The real executable once: its exit code is what a health check sees.
  const ok = await wombatProcess(['status', '--json'], env);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(ok.json.healthy, true);
  t.same(ok.json.problems, []);
  t.equal(ok.json.engines.length, 1);
  t.match(ok.json.engines[0], { state: 'running', pid: Number, host: String });
  t.equal(ok.json.workers.filter((w: { state: string }) => w.state === 'alive').length, 1, 'the running worker is alive');
  t.same(ok.json.alerts, [], 'no alert open');
  t.equal(ok.json.dead_letters, 0);
  t.match(ok.json.queues.find((q: { job: string }) => q.job === 'canary'), { waiting: 0, running: 0, failure_rate: null, failure_window_minutes: 60 });

  const staleId = randomUUID();
  await tdb.sql`insert into wombat.workers (id, host, pid, version, queues, concurrency, last_beat_at, heartbeat_interval_ms)
                values (${staleId}, 'w1', 111, '0.1.0', '{canary}', 2, now() - interval '1 hour', 1000)`;
  const live = await wombat(['status'], env);
  t.equal(live.code, 0, live.stderr);
  t.match(live.stdout, /^healthy/);
  t.match(live.stdout, /workers \(1 alive\)/);
  t.match(live.stdout, /QUEUES?|JOB/);

  const workers = await wombat(['workers', '--json'], env);
  t.equal(workers.code, 0);
  t.equal(workers.json.workers.length, 2);
  const running = workers.json.workers.find((w: { pid: number }) => w.pid === worker.child.pid);
  t.match(running, { state: 'alive', queues: ['canary', 'fetch-candles', 'collect-symbols'], concurrency: 3 * 50 + 4 + 1 });
  t.same(
    running.queue_settings,
    [
      { queue: 'canary', loops: 3, batch_size: 50, max_running: 150 },
      { queue: 'fetch-candles', loops: 4, batch_size: 1, max_running: 4 },
      { queue: 'collect-symbols', loops: 1, batch_size: 1, max_running: 1 },
    ],
    'each queue with its fetch loops (WORKER_CONCURRENCY) and batch size (WORKER_BATCH_SIZE)',
  );
  t.match(workers.json.workers.find((w: { host: string }) => w.host === 'w1'), { state: 'stale', pid: 111, concurrency: 2, queue_settings: null });
  const table = await wombat(['workers'], env);
  t.match(table.stdout, /HOST\s+PID\s+STATE\s+IN HAND\s+RSS\s+LAST BEAT\s+STARTED\s+QUEUES \(LOOPS×BATCH\)$/m);
  t.match(table.stdout, new RegExp(`\\s${worker.child.pid}\\s+alive\\s.*\\scanary 3×50, fetch-candles 4×1, collect-symbols 1×1$`, 'm'), 'loops × batch per queue, not one summed figure');
  t.match(table.stdout, /w1\s+111\s+stale\s.*\scanary$/m, 'a row without queue settings shows its queue names');
  t.notMatch(table.stdout, /CONCURRENCY/);

  // A worker whose heartbeat stops (stopped, not dead) makes the system unhealthy until it beats again.
  worker.child.kill('SIGSTOP');
  let noWorker = await wombatProcess(['status', '--json'], env);
  for (let i = 0; i < 100 && noWorker.code === 0; i++) {
    await new Promise((r) => setTimeout(r, 200));
    noWorker = await wombatProcess(['status', '--json'], env);
  }
  worker.child.kill('SIGCONT');
  t.equal(noWorker.code, 1, 'unhealthy exits 1');
  t.equal(noWorker.json.healthy, false);
  t.match(noWorker.json.problems, [/no worker is alive/]);
  let back = await wombat(['status'], env);
  for (let i = 0; i < 100 && back.code !== 0; i++) {
    await new Promise((r) => setTimeout(r, 200));
    back = await wombat(['status'], env);
  }
  t.equal(back.code, 0, 'healthy again once the worker beats');

  // Alert rows as the engines' evaluator keeps them: one open, one resolved.
  await tdb.sql`insert into wombat.alerts (key, kind, severity, state, subject, message)
                values ('engine', 'engine', 'critical', 'open', 'no engine for 5 minutes', 'no live scheduler-engine')`;
  await tdb.sql`insert into wombat.alerts (key, kind, severity, state, subject, message, resolved_at)
                values ('old', 'threshold', 'warning', 'resolved', 'old one', 'cleared', now())`;
  const alerting = await wombat(['status', '--json'], env);
  t.equal(alerting.code, 1);
  t.equal(alerting.json.alerts.length, 1, 'only open alerts');
  t.match(alerting.json.alerts[0], { severity: 'critical', subject: 'no engine for 5 minutes' });
  const text = (await wombat(['status'], env)).stdout;
  t.match(text, /^UNHEALTHY\n {2}- 1 critical alert\(s\) open/);
  t.match(text, /alerts open: 1\n {2}- critical no engine for 5 minutes/);
  await tdb.sql`update wombat.alerts set state = 'resolved', resolved_at = now() where state = 'open'`;
  t.equal((await wombat(['status'], env)).code, 0, 'healthy again once the alert is resolved');

  // A warning is reported, not judged: one worker per queue is not an outage.
  await tdb.sql`insert into wombat.alerts (key, kind, severity, state, subject, message)
                values ('workers_low', 'workers_low', 'warning', 'open', 'too few live workers: canary 1', 'one worker')`;
  const warned = await wombat(['status', '--json'], env);
  t.equal(warned.code, 0, 'an open warning leaves the system healthy');
  t.match(warned.json.alerts, [{ severity: 'warning', subject: 'too few live workers: canary 1' }], 'and is listed');
  await tdb.sql`update wombat.alerts set state = 'resolved', resolved_at = now() where state = 'open'`;
});

t.test('schedules: create, list, show, edit, pause, resume, preview, delete, with the api\'s validation', async (t) => {
  const created = await wombat(['schedules', 'create', '--name', 'cli-canary', '--job', 'canary', '--every', '1h', '--json'], env);
  t.equal(created.code, 0, created.stderr);
  t.match(created.json, { id: Number, name: 'cli-canary', job: 'canary', every: '1h', trigger: 'every 1h', timezone: 'UTC', status: 'active', built_in: false });

  const bad = await wombat(['schedules', 'create', '--name', 'bad', '--job', 'canary', '--cron', '61 * * * *'], env);
  t.equal(bad.code, 2, 'invalid input exits 2');
  t.match(bad.stderr, /^wombat: cron "61 \* \* \* \*" is not a valid cron pattern/);
  t.equal(bad.stderr.trim().split('\n').length, 1, 'one line');
  const taken = await wombat(['schedules', 'create', '--name', 'cli-canary', '--job', 'canary', '--every', '1h'], env);
  t.equal(taken.code, 1);
  t.match(taken.stderr, /already exists; choose another name/);

  const list = await wombat(['schedules', 'list', '--json'], env);
  t.same(list.json.schedules.map((s: { name: string }) => s.name).sort(), ['cli-canary', 'collect-prices', 'collect-symbols', 'daily-candles', 'monthly-report', 'weekly-report']);
  const listTable = await wombat(['schedules'], env);
  t.match(listTable.stdout, /ID\s+NAME\s+JOB\s+TRIGGER/);
  t.match(listTable.stdout, /daily-candles\*/);

  const shown = await wombat(['schedules', 'show', 'cli-canary', '--json', '--count', '3'], env);
  t.equal(shown.code, 0);
  t.equal(shown.json.next_occurrences.length, 3);
  t.equal(new Date(shown.json.next_occurrences[1]).getTime() - new Date(shown.json.next_occurrences[0]).getTime(), 3_600_000);

  const edited = await wombat(['schedules', 'edit', String(created.json.id), '--every', '5m', '--overlap', 'allow', '--json'], env);
  t.equal(edited.code, 0, edited.stderr);
  t.match(edited.json, { every: '5m', overlap: 'allow', version: 2 });
  const badEdit = await wombat(['schedules', 'edit', 'cli-canary', '--catchup-max', 'lots'], env);
  t.equal(badEdit.code, 2);
  t.match(badEdit.stderr, /catchup_max must be an integer from 1 to 1000/);
  const builtIn = await wombat(['schedules', 'edit', 'daily-candles', '--every', '1h'], env);
  t.equal(builtIn.code, 1);
  t.match(builtIn.stderr, /is built in/);

  const paused = await wombat(['schedules', 'pause', 'cli-canary', '--reason', 'maintenance', '--json'], env);
  t.match(paused.json, { status: 'paused', paused_reason: 'maintenance' });
  const resumed = await wombat(['schedules', 'resume', 'cli-canary'], env);
  t.equal(resumed.code, 0);
  t.match(resumed.stdout, /resumed schedule \d+ \(cli-canary\)/);

  const preview = await wombat(['schedules', 'preview', '--times', '09:00,18:00', '--timezone', 'Asia/Seoul', '--after', '2026-01-01T00:00:00Z', '--count', '3', '--json'], env);
  t.equal(preview.code, 0, preview.stderr);
  t.same(preview.json, { trigger: 'at 09:00, 18:00', timezone: 'Asia/Seoul', occurrences: ['2026-01-01T09:00:00.000Z', '2026-01-02T00:00:00.000Z', '2026-01-02T09:00:00.000Z'] });
  const storedPreview = await wombat(['schedules', 'preview', 'cli-canary', '--after', '2026-01-01T00:00:00Z', '--count', '2', '--json'], env);
  t.same(storedPreview.json.occurrences, ['2026-01-01T00:05:00.000Z', '2026-01-01T00:10:00.000Z']);

  const deleted = await wombat(['schedules', 'delete', 'cli-canary', '--json'], env);
  t.same(deleted.json, { deleted: created.json.id, name: 'cli-canary' });
  const gone = await wombat(['schedules', 'show', 'cli-canary'], env);
  t.equal(gone.code, 3, 'not found exits 3');
  t.match(gone.stderr, /no schedule with name "cli-canary"/);
  const refused = await wombat(['schedules', 'delete', 'collect-prices'], env);
  t.equal(refused.code, 1);
});

t.test('trigger enqueues a job or a schedule, prints the run id, and --wait exits with the outcome', async (t) => {
  const plain = await wombat(['trigger', 'canary'], env);
  t.equal(plain.code, 0, plain.stderr);
  t.match(plain.stdout.trim(), /^[0-9a-f-]{36}$/);

  const waited = await wombatProcess(['trigger', 'canary', '--wait', '--json'], env);
  t.equal(waited.code, 0, waited.stderr);
  t.match(waited.json, { job: 'canary', trigger: 'manual', state: 'completed', progress: 1 });

  const bySchedule = await wombat(['trigger', 'collect-symbols', '--wait', '--json'], env);
  t.equal(bySchedule.code, 0, bySchedule.stderr);
  t.match(bySchedule.json, { job: 'collect-symbols', trigger: 'manual', schedule_id: Number, state: 'completed' });

  const failed = await wombat(['trigger', 'fetch-candles', '--params', '{"exchange":"upbit","symbol":"KRW-NOPE","timeframe":"1D","daysBack":2}', '--wait'], env);
  t.equal(failed.code, 1, 'a failed run exits 1');
  t.match(failed.stdout, /state:\s+failed/);
  t.match(failed.stdout, /unknown_symbol/);

  const unknown = await wombat(['trigger', 'no-such-thing', '--json'], env);
  t.equal(unknown.code, 3);
  t.match(unknown.json, { error: { code: 'not_found', message: /neither a schedule/, exit_code: 3 } }, 'with --json a failure is a JSON document too');
  t.match(unknown.stderr, /neither a schedule .* nor a job type/);
  const badParams = await wombat(['trigger', 'fetch-candles', '--params', '{"exchange":"nyse"}'], env);
  t.equal(badParams.code, 2);
  t.match(badParams.stderr, /params\.exchange must be exchange: upbit or kis/);
  const notJson = await wombat(['trigger', 'canary', '--params', '{oops'], env);
  t.equal(notJson.code, 2);
  t.match(notJson.stderr, /--params must be JSON/);

  const task = await wombat(['task', plain.stdout.trim(), '--follow', '--json'], env);
  t.equal(task.code, 0);
  t.match(task.json, { id: plain.stdout.trim(), state: 'completed' });
  const shown = await wombat(['task', plain.stdout.trim()], env);
  t.match(shown.stdout, /state:\s+completed/);
  t.equal((await wombat(['task', 'abc'], env)).code, 2);
  t.equal((await wombat(['task', randomUUID()], env)).code, 3);
});

t.test('runs lists the history with filters; dlq lists, requeues and purges dead letters', async (t) => {
  const canaries = await wombat(['runs', '--job', 'canary', '--state', 'completed', '--json'], env);
  t.equal(canaries.code, 0, canaries.stderr);
  t.ok(canaries.json.runs.length >= 2);
  t.ok(canaries.json.runs.every((r: { job: string; state: string }) => r.job === 'canary' && r.state === 'completed'));
  const limited = await wombat(['runs', '--limit', '1', '--since', '1h', '--json'], env);
  t.equal(limited.json.runs.length, 1);
  t.ok(limited.json.total >= 4);
  const held = await wombat(['runs', '--state', 'held', '--json'], env);
  t.equal(held.code, 0, 'every contract state is accepted');
  t.same(held.json.runs, []);
  const bySchedule = await wombat(['runs', '--schedule', 'collect-symbols', '--json'], env);
  t.equal(bySchedule.json.runs.length, 1);
  t.equal((await wombat(['runs', '--since', 'yesterday'], env)).code, 2);
  const table = await wombat(['runs'], env);
  t.match(table.stdout, /ID\s+JOB\s+TRIGGER\s+STATE/);

  const dlq = await wombat(['dlq', 'list', '--json'], env);
  t.equal(dlq.json.total, 1);
  const dead = dlq.json.dead_letters[0];
  t.match(dead, { job: 'fetch-candles', state: 'failed', error: { code: 'unknown_symbol' } });
  t.notOk('stack' in dead.error, 'no stack trace in the run history');

  const requeued = await wombat(['dlq', 'requeue', dead.id, '--json'], env);
  t.equal(requeued.code, 0, requeued.stderr);
  t.equal(requeued.json.count, 1);
  const newId = requeued.json.requeued[0].task_id;
  const again = await wombat(['dlq', 'requeue', dead.id], env);
  t.equal(again.code, 3, 'a dead letter requeued once is not requeued twice: it is no dead letter any more');
  t.match(again.stderr, /not requeued: not a dead letter/);
  const followed = await wombat(['task', newId, '--follow', '--json'], env);
  t.equal(followed.code, 1, 'the requeued run fails again');
  t.match(followed.json, { retry_of: dead.id, state: 'failed' });

  t.equal((await wombat(['dlq', 'requeue'], env)).code, 2, 'requeue needs ids, --all or --job');
  t.equal((await wombat(['dlq', 'purge', '--older-than', 'x'], env)).code, 2);
  const purged = await wombat(['dlq', 'purge', '--older-than', '0', '--json'], env);
  t.same(purged.json, { purged: 1 });
  const empty = await wombat(['dlq', '--json'], env);
  t.equal(empty.json.total, 0);
});

t.test('wombat engine stops cleanly on SIGTERM', async (t) => {
  engine.child.kill('SIGTERM');
  t.equal(await engine.exited, 0);
  t.match(engine.output(), /engine stopped/);
  const status = await wombat(['status', '--json'], env);
  t.equal(status.code, 1, 'no live engine: unhealthy');
  t.match(status.json.problems, [/no scheduler-engine is alive/]);
});
