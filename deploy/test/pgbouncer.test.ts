/**
 * Wombat behind Debian's PgBouncer in transaction mode: every query and transaction
 * through the pooler (DATABASE_URL), LISTEN and session advisory locks through the
 * direct address (DATABASE_SESSION_URL). Without the session address each service
 * refuses to start, saying so in one line.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDatabase, sharesSessions } from '@wombat/core/platform';
import { insertSchedule, validateScheduleInput } from '@wombat/core/schedules';
import { tryAlertsLock } from '@wombat/core/alerts';
import { createTestDatabase, testLogger } from '@wombat/core/testing';
import { collectPosts, withFileLock, type PostCollectionOptions } from '@wombat/collectors';
import { makePosts, startFakeReddit } from '@wombat/collectors/testing';
import { sql as ksql } from 'kysely';
import { findPgBouncer, startPgBouncer, POOLER_SETTINGS } from '../pgbouncer-harness.ts';
import { commonEnv, post, serviceEnv, startProcess, waitReady, type ServiceName, type ServiceProcess } from '../outage-harness.ts';
import { collectorsFor, fakeExchange, tempDataRoot } from '../../packages/collectors/test/helpers.ts';
import { freePort, repoRoot } from '@wombat/core/platform';

const ci = process.env.CI === 'true' || process.env.WOMBAT_CI === '1';
const bin = findPgBouncer();
if (!bin) {
  if (ci) t.fail('pgbouncer is not installed (.ci/run installs Debian\'s pgbouncer)');
  else t.plan(0, 'pgbouncer is not installed (Debian: apt-get install pgbouncer)');
} else {
  t.test('Wombat through PgBouncer in transaction mode', async (t) => {
    const tdb = await createTestDatabase(t);
    const bouncer = await startPgBouncer(t, tdb.url, bin);
    const pooled = createDatabase({ url: bouncer.url, pooled: true, poolSize: 6, applicationName: 'wombat-test' });
    t.teardown(() => pooled.close());

    await t.test('the probe tells the transaction pooler from a direct connection', async (t) => {
      t.equal(await sharesSessions(bouncer.url), true, 'through PgBouncer a LISTEN does not stay with its connection');
      t.equal(await sharesSessions(tdb.url), false, 'a direct connection keeps its LISTEN');
    });

    await t.test('each service refuses to start on the pooler without DATABASE_SESSION_URL, in one line', async (t) => {
      const apiPort = await freePort();
      const names: ServiceName[] = ['scheduler-engine', 'worker', 'api'];
      const procs = names.map((n) => startProcess(n, { ...commonEnv({ databaseUrl: bouncer.url, dataRoot: '/tmp' }), ...serviceEnv(n, apiPort) }));
      t.teardown(() => procs.forEach((p) => p.alive() && p.child.kill('SIGKILL')));
      for (const p of procs) {
        const exit = await Promise.race([p.exited, sleep(20_000).then(() => 'timeout' as const)]);
        t.not(exit, 'timeout', `${p.name} exits`);
        if (exit !== 'timeout') t.equal(exit.code, 1, `${p.name} exits with status 1`);
        const lines = p.output().split('\n').filter((l) => l.includes('DATABASE_SESSION_URL'));
        t.equal(lines.length, 1, `${p.name}: one line names DATABASE_SESSION_URL`);
        t.match(lines[0] ?? '', /transaction-mode pooler/, `${p.name} says why`);
      }
    });

    await t.test('npm run migrate with DATABASE_URL on the pooler runs on DATABASE_SESSION_URL', async (t) => {
      const r = spawnSync(process.execPath, [path.join(repoRoot, 'deploy/migrate.ts')], {
        env: { PATH: process.env.PATH ?? '', DATABASE_URL: bouncer.url, DATABASE_SESSION_URL: tdb.url, LOG_FORMAT: 'json' },
        encoding: 'utf8',
        timeout: 60_000,
      });
      t.equal(r.status, 0, 'migrate exits 0', { output: r.stdout + r.stderr });
      t.match(r.stdout, /database ready/);
    });

    await t.test('the reconciler and the alert evaluator each hold their transaction lock alone', async (t) => {
      // Both locks are transaction-scoped: a pooler keeps a transaction on one server session.
      let holders = 0;
      let most = 0;
      const take = (kind: 'alerts' | 'reconcile') =>
        pooled.db.transaction().execute(async (trx) => {
          const got = kind === 'alerts' ? await tryAlertsLock(trx) : (await ksql<{ locked: boolean }>`select pg_try_advisory_xact_lock(hashtext('wombat.run-reconcile')) as locked`.execute(trx)).rows[0]?.locked === true;
          if (!got) return false;
          holders++;
          most = Math.max(most, holders);
          await sleep(50);
          holders--;
          return true;
        });
      for (const kind of ['alerts', 'reconcile'] as const) {
        most = 0;
        const got = await Promise.all(Array.from({ length: 6 }, () => take(kind)));
        t.equal(got.filter(Boolean).length >= 1, true, `${kind}: someone holds it`);
        t.equal(most, 1, `${kind}: never two holders at once`);
      }
    });

    await t.test('the Parquet file lock excludes writers across connections (session address)', async (t) => {
      const dataRoot = await tempDataRoot(t);
      const file = `${dataRoot}/series.parquet`;
      let inside = 0;
      let most = 0;
      await Promise.all(
        Array.from({ length: 4 }, () =>
          withFileLock(
            file,
            async () => {
              inside++;
              most = Math.max(most, inside);
              await sleep(40);
              inside--;
            },
            { db: pooled.db, sessionUrl: tdb.url, timeoutMs: 20_000 },
          ),
        ),
      );
      t.equal(most, 1, 'one writer at a time');
      const [left] = await tdb.sql<{ n: number }[]>`select count(*)::int as n from pg_locks where locktype = 'advisory'`;
      t.equal(left!.n, 0, 'no advisory lock is left behind');
    });

    await t.test('the KIS token claim through the pooler issues one token for two collectors', async (t) => {
      const NOW = new Date('2026-06-03T08:00:00Z');
      const now = () => NOW;
      const fake = await fakeExchange(t, { now, kis: { tokenIntervalMs: 0 } });
      const dataRoot = await tempDataRoot(t);
      const kis = { baseUrl: fake.url, appKey: 'app-key-1', appSecret: 'secret-1', accountType: 'real' as const, masterUrls: fake.masterUrls };
      const a = collectorsFor(t, fake, { dataRoot, now, db: pooled.db, sessionUrl: tdb.url, kis });
      const b = collectorsFor(t, fake, { dataRoot, now, db: pooled.db, sessionUrl: tdb.url, kis });
      await Promise.all([
        a.fetchCandles({ exchange: 'kis', symbol: '000660', timeframe: '1D', daysBack: 10 }, {}),
        b.fetchCandles({ exchange: 'kis', symbol: '035720', timeframe: '1D', daysBack: 10 }, {}),
      ]);
      t.equal(fake.kis.tokensIssued, 1, 'two collectors, one token');
    });

    await t.test('the Reddit token claim through the pooler issues one token for two collections', async (t) => {
      const fake = await startFakeReddit({ clients: { 'client-p': 'secret-p' } });
      t.teardown(() => fake.close());
      fake.addPosts(makePosts('hardware', 20, Math.floor(Date.now() / 1000) - 60, 600, 'p'));
      const options = (subreddit: string) => ({
        db: pooled.db as unknown as PostCollectionOptions['db'],
        baseUrl: fake.url,
        oauthBaseUrl: fake.url,
        userAgent: 'linux:wombat-test:0.1 (by /u/wombat)',
        clientId: 'client-p',
        clientSecret: 'secret-p',
        subreddits: [subreddit],
        horizonHours: 72,
        refreshHours: 24,
        maxPages: 2,
        log: testLogger('posts'),
        retryBaseDelayMs: 10,
        timeoutMs: 5000,
      });
      const [a, b] = await Promise.all([collectPosts(options('hardware')), collectPosts(options('hardware'))]);
      t.match([a, b], [{ ok: true, mode: 'oauth' }, { ok: true, mode: 'oauth' }]);
      t.equal(fake.tokensIssued(), 1, 'two collections, one token');
    });

    await t.test('two engines, the api and a worker on the pooler: each occurrence published and run once; pickup latency against a direct connection', async (t) => {
      const pickup: Record<string, number[]> = {};
      for (const mode of ['pooler', 'direct'] as const) {
        const db = await createTestDatabase(t);
        const bouncerFor = mode === 'pooler' ? await startPgBouncer(t, db.url, bin) : undefined;
        const env = { ...commonEnv({ databaseUrl: bouncerFor?.url ?? db.url, dataRoot: '/tmp' }), ...(bouncerFor ? { DATABASE_SESSION_URL: db.url } : {}) };
        const def = validateScheduleInput({ name: `every-second-${mode}`, job: 'canary', every: '1s', params: {} });
        if (!def.ok) throw new Error(def.problems.join('; '));
        const schedule = await insertSchedule(db.db, def.value);
        const apiPort = await freePort();
        const apiUrl = `http://127.0.0.1:${apiPort}`;
        const engines = mode === 'pooler' ? 2 : 1;
        const procs: ServiceProcess[] = [
          startProcess('api', { ...env, ...serviceEnv('api', apiPort) }),
          ...Array.from({ length: engines }, () => startProcess('scheduler-engine', { ...env, ...serviceEnv('scheduler-engine', apiPort) })),
          startProcess('worker', { ...env, ...serviceEnv('worker', apiPort), WORKER_POLL_INTERVAL_SECONDS: '0.5' }),
        ];
        const stop = async () => {
          for (const p of procs) if (p.alive()) p.child.kill('SIGTERM');
          const kill = setTimeout(() => procs.forEach((p) => p.alive() && p.child.kill('SIGKILL')), 15_000);
          await Promise.all(procs.map((p) => p.exited));
          clearTimeout(kill);
        };
        t.teardown(stop);
        for (const p of procs) await waitReady(p, apiUrl, 30_000);
        const startedAt = new Date();
        // Tasks through the api, spaced out: each is picked up on its own.
        for (let i = 0; i < 20; i++) {
          const a = await post(apiUrl, '/api/tasks/canary', {}, 5000);
          t.equal(a.status, 202, `${mode}: task ${i} accepted`);
          await sleep(150);
        }
        await sleep(3000);
        for (const p of procs) t.ok(p.alive(), `${mode}: ${p.name} still running`);
        const health = spawnSync(process.execPath, [path.join(repoRoot, 'deploy/healthcheck.ts'), 'worker'], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 30_000 });
        t.equal(health.status, 0, `${mode}: the worker's healthcheck passes`, { output: health.stdout + health.stderr });
        t.same(procs.flatMap((p) => p.fatalLines()), [], `${mode}: nothing fatal`);
        // pg-boss reports background failures (maintenance, polling, its LISTEN) only as these lines.
        t.same(procs.flatMap((p) => p.output().split('\n').filter((l) => l.includes('"pg-boss error"'))), [], `${mode}: pg-boss reported no error`);
        await stop();
        const runs = await db.sql<{ id: string; trigger: string; scheduled_for: Date | null; state: string; attempts: number; published_at: Date | null }[]>`
          select id, trigger, scheduled_for, state, attempts, published_at from wombat.runs where job = 'canary' and (created_at >= ${startedAt} or schedule_id = ${schedule.id})`;
        const scheduled = runs.filter((r) => r.trigger !== 'task');
        const occurrences = new Set(scheduled.map((r) => r.scheduled_for?.toISOString()));
        t.ok(scheduled.length >= 4, `${mode}: ${scheduled.length} occurrences published`);
        t.equal(occurrences.size, scheduled.length, `${mode}: no occurrence published twice`);
        const published = runs.filter((r) => r.published_at !== null);
        const [jobs] = await db.sql<{ n: number }[]>`select count(*)::int as n from pgboss.job where name = 'canary' and id = any(${published.map((r) => r.id)}::uuid[])`;
        t.equal(jobs!.n, published.length, `${mode}: one job for each published run`);
        t.same(runs.filter((r) => r.state !== 'completed' && r.published_at !== null && r.scheduled_for !== null && r.scheduled_for.getTime() < Date.now() - 5000), [], `${mode}: nothing stuck`);
        const twice = runs.filter((r) => r.attempts > 1);
        t.same(twice, [], `${mode}: no run executed twice`);
        const tasks = await db.sql<{ ms: number }[]>`
          select extract(epoch from (j.started_on - j.created_on)) * 1000 as ms
          from pgboss.job j join wombat.runs r on r.id = j.id
          where r.trigger = 'task' and j.started_on is not null order by ms`;
        pickup[mode] = tasks.map((x) => Number(x.ms));
        t.equal(tasks.length, 20, `${mode}: every task was picked up`);
      }
      const median = (xs: number[]) => xs[Math.floor(xs.length / 2)] ?? Number.NaN;
      const p90 = (xs: number[]) => xs[Math.floor(xs.length * 0.9)] ?? Number.NaN;
      t.comment(
        `pickup latency (created -> started), 20 tasks each: pooler p50 ${median(pickup.pooler!).toFixed(1)} ms, p90 ${p90(pickup.pooler!).toFixed(1)} ms; direct p50 ${median(pickup.direct!).toFixed(1)} ms, p90 ${p90(pickup.direct!).toFixed(1)} ms (pgbouncer ${Object.entries(POOLER_SETTINGS).map(([k, v]) => `${k}=${v}`).join(' ')})`,
      );
    });
  });
}
