import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { sql } from 'kysely';
import { repoRoot } from '@wombat/core/platform';
import { jobDefaults, jobTimeoutSeconds, parseJobTimeouts } from '@wombat/core/jobs';
import { publishRun, scheduleJobOptions } from '@wombat/core/runs';
import { childEnv, createTestDatabase } from '@wombat/core/testing';
import { finished, jobStateEventually, startTestWorker, waitForRun } from './fixtures/harness.ts';

/**
 * JOB_TIMEOUT_SECONDS: a default timeout for every job type and overrides per type, written
 * into pg-boss's queues by npm run migrate. A job sent without a timeout of its own takes its
 * queue's, and the worker aborts it there; a schedule's or a request's own timeout wins.
 */
t.test('JOB_TIMEOUT_SECONDS parses a default, per-type overrides and old job names, and refuses the rest', async (t) => {
  t.same(parseJobTimeouts(undefined), { byJob: {} });
  t.same(parseJobTimeouts('900'), { all: 900, byJob: {} });
  t.same(parseJobTimeouts('900, fetch-candles=600 ,price_crawl=120'), { all: 900, byJob: { 'fetch-candles': 600, 'crawl-prices': 120 } });
  const timeouts = parseJobTimeouts('900,fetch-candles=600');
  t.equal(jobTimeoutSeconds('fetch-candles', timeouts), 600, 'a type\'s own override');
  t.equal(jobTimeoutSeconds('backtest', timeouts), 900, 'the default for every other type');
  t.equal(jobTimeoutSeconds('backtest'), jobDefaults.backtest.timeoutSeconds, 'unset: the job contract\'s');
  t.throws(() => parseJobTimeouts('mine-bitcoin=5'), { message: /"mine-bitcoin" is not a job type/ });
  t.throws(() => parseJobTimeouts('canary=0'), { message: /canary must be whole seconds from 1 to 86400, not "0"/ });
  t.throws(() => parseJobTimeouts('90000'), { message: /from 1 to 86400/ });
  t.throws(() => parseJobTimeouts('60,120'), { message: /twice/ });
});

t.test('a canary sleeping past the timeout npm run migrate set from JOB_TIMEOUT_SECONDS is stopped and its run failed as timed out', async (t) => {
  const tdb = await createTestDatabase(t);
  const migrated = spawnSync(process.execPath, ['deploy/migrate.ts'], {
    cwd: repoRoot,
    env: childEnv({ DATABASE_URL: tdb.url, LOG_FORMAT: 'json', JOB_TIMEOUT_SECONDS: '1200,canary=2' }),
    encoding: 'utf8',
    timeout: 120_000,
  });
  t.equal(migrated.status, 0, migrated.stderr + migrated.stdout);
  const queues = await sql<{ name: string; expire_seconds: number }>`select name, expire_seconds from pgboss.queue order by name`.execute(tdb.db);
  const expire = Object.fromEntries(queues.rows.map((q) => [q.name, q.expire_seconds]));
  t.equal(expire.canary, 2, 'the canary queue takes its override');
  t.equal(expire['fetch-candles'], 1200, 'every other queue the default');

  const { boss, worker } = await startTestWorker(t, tdb, { queues: ['canary'] });
  const startedMs = Date.now();
  const id = await publishRun(tdb.db, boss, { job: 'canary', params: { sleep_ms: 30_000 }, trigger: 'task' });
  const run = await waitForRun(tdb, id, finished);
  t.equal(run.state, 'failed', 'the run history says failed');
  t.match(run.error, { code: 'timeout', message: 'job ran past its timeout of 2 s' }, 'and why');
  t.ok(Date.now() - startedMs < 15_000, 'stopped long before its 30 s sleep');
  t.equal(await jobStateEventually(boss, 'canary', id, 'failed'), 'failed', 'pg-boss agrees');
  t.same(worker.running(), []);

  const own = await publishRun(tdb.db, boss, { job: 'canary', params: { sleep_ms: 3_000 }, trigger: 'task', timeoutSeconds: 30 });
  t.equal((await waitForRun(tdb, own, finished)).state, 'completed', 'a request\'s own timeout wins over the type\'s');

  const scheduled = await publishRun(tdb.db, boss, { job: 'canary', params: {}, trigger: 'schedule', ...scheduleJobOptions({ timeoutSeconds: 45, maxRetries: null, retryDelaySeconds: null, retryBackoff: null }) });
  const untimed = await publishRun(tdb.db, boss, { job: 'canary', params: {}, trigger: 'schedule', ...scheduleJobOptions({ timeoutSeconds: null, maxRetries: null, retryDelaySeconds: null, retryBackoff: null }) });
  const jobs = await sql<{ id: string; expire_seconds: number }>`select id::text, expire_seconds from pgboss.job where id in (${scheduled}::uuid, ${untimed}::uuid)`.execute(tdb.db);
  const byId = Object.fromEntries(jobs.rows.map((j) => [j.id, j.expire_seconds]));
  t.equal(byId[scheduled], 45, 'a schedule\'s own timeout wins');
  t.equal(byId[untimed], 2, 'a schedule without one takes the type\'s');
});

t.test('npm run migrate refuses a bad JOB_TIMEOUT_SECONDS, naming it', async (t) => {
  const res = spawnSync(process.execPath, ['deploy/migrate.ts'], {
    cwd: path.resolve(repoRoot),
    env: childEnv({ DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', JOB_TIMEOUT_SECONDS: 'canary=soon' }),
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(res.status, 1);
  t.match(res.stderr, /JOB_TIMEOUT_SECONDS="canary=soon": canary must be whole seconds from 1 to 86400, not "soon"/);
});
