import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { startFakeExchange } from '@wombat/collectors/testing';
import { freePort, repoRoot } from '@wombat/core/platform';
import { createTestDatabase } from '@wombat/core/testing';
import { bin, tempDir, wombat, wombatProcess } from './helpers.ts';

/** `wombat run` in the operator's process, recorded with trigger cli; usage and configuration errors. */
t.setTimeout(600_000);
const tdb = await createTestDatabase(t);
const fake = await startFakeExchange();
t.teardown(() => fake.close());
const dataRoot = await tempDir(t);
const env = { DATABASE_URL: tdb.url, TZ: 'UTC', DATA_ROOT: dataRoot, UPBIT_BASE_URL: fake.url };

t.test('run <job> runs it here, recorded in the run history with trigger cli', async (t) => {
  const symbols = await wombat(['run', 'collect-symbols', '--json'], env);
  t.equal(symbols.code, 0, symbols.stderr);
  t.match(symbols.json, { job: 'collect-symbols', run_id: String, state: 'completed' });
  const [row] = await tdb.sql<{ trigger: string; state: string; progress: number; started_at: Date | null; finished_at: Date | null }[]>`
    select trigger, state, progress, started_at, finished_at from wombat.runs where id = ${symbols.json.run_id}`;
  t.match(row, { trigger: 'cli', state: 'completed', progress: 1 });
  t.ok(row!.started_at && row!.finished_at);
  const [n] = await tdb.sql<{ n: number }[]>`select count(*)::int as n from wombat.symbols where exchange = 'upbit'`;
  t.equal(n!.n, 5, 'the symbols table was filled from the exchange');

  const candles = await wombat(['run', 'fetch-candles', '--params', '{"exchange":"upbit","symbol":"KRW-BTC","timeframe":"1D","daysBack":5}'], env);
  t.equal(candles.code, 0, candles.stderr);
  t.match(candles.stdout, /^fetch-candles: completed in .* \(run [0-9a-f-]{36}\)$/m);
  t.ok(existsSync(path.join(dataRoot, 'upbit', 'KRW-BTC', '1D')));

  const failed = await wombat(['run', 'fetch-candles', '--params', '{"exchange":"upbit","symbol":"KRW-NOPE","timeframe":"1D","daysBack":2}', '--json'], env);
  t.equal(failed.code, 1, 'a failed job exits 1');
  t.match(failed.json, { state: 'failed', error: { code: 'unknown_symbol' } });
  t.notOk('stack' in failed.json.error);
  const [f] = await tdb.sql<{ state: string; error: { code: string } }[]>`select state, error from wombat.runs where id = ${failed.json.run_id}`;
  t.match(f, { state: 'failed', error: { code: 'unknown_symbol' } });

  const badParams = await wombat(['run', 'fetch-candles', '--params', '{"exchange":"upbit"}'], env);
  t.equal(badParams.code, 2);
  t.match(badParams.stderr, /params\.symbol|symbol/);
  const unknown = await wombat(['run', 'mine-bitcoin'], env);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /"mine-bitcoin" is not a job type; give one of .*full/);
});

t.test('run data-snapshot takes a dated snapshot of DATA_ROOT; snapshot list shows it', async (t) => {
  const snapshotDir = await tempDir(t);
  const off = await wombat(['snapshot', 'list'], env);
  t.equal(off.code, 2, 'without SNAPSHOT_DIR: a configuration error');
  t.match(off.stderr, /SNAPSHOT_DIR is not set/);
  const notConfigured = await wombat(['run', 'data-snapshot', '--json'], env);
  t.equal(notConfigured.code, 1);
  t.match(notConfigured.json, { state: 'failed', error: { code: 'not_configured', message: /SNAPSHOT_DIR is not set/ } });

  const withDir = { ...env, SNAPSHOT_DIR: snapshotDir };
  const taken = await wombat(['run', 'data-snapshot', '--json'], withDir);
  t.equal(taken.code, 0, taken.stderr);
  t.match(taken.json, { job: 'data-snapshot', state: 'completed', result: { name: /^data-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$/, linked: 1, copied: 0 } });
  t.ok(existsSync(path.join(snapshotDir, taken.json.result.name, 'upbit', 'KRW-BTC', '1D')), 'the candle files of the run before, linked');
  const listed = await wombat(['snapshot', 'list', '--json'], withDir);
  t.equal(listed.code, 0, listed.stderr);
  t.match(listed.json.snapshots, [{ name: taken.json.result.name, files: 1, linked: 1 }]);
  const text = await wombat(['snapshot', 'list'], withDir);
  t.match(text.stdout, new RegExp(`^NAME\\s+TAKEN[\\s\\S]*^${taken.json.result.name}\\s`, 'm'));
});

t.test('run full runs the daily pipeline in order, each step its own cli run', async (t) => {
  const full = await wombat(['run', 'full', '--json'], env);
  t.equal(full.code, 0, full.stderr);
  const steps = full.json.runs.map((r: { job: string }) => r.job);
  t.same(steps.slice(0, 2), ['collect-symbols', 'collect-prices'], 'symbols, then prices');
  t.ok(full.json.runs.slice(0, 2).every((r: { state: string }) => r.state === 'completed'));
  t.same(
    full.json.runs.slice(2).map((r: { job: string; state: string; reason: string }) => [r.job, r.state, r.reason]),
    [['crawl-prices', 'skipped', 'PRICE_CRAWL_SOURCES is not set'], ['collect-posts', 'skipped', 'REDDIT_SUBREDDITS is not set']],
    'the crawls this environment does not configure are left out, saying why',
  );
  const prices = full.json.runs[1];
  t.match(prices.result, { exchanges: ['upbit'], series: 5 }, 'every active Upbit symbol, 1D');
  const rows = await tdb.sql<{ job: string; trigger: string }[]>`select job, trigger from wombat.runs where id in ${tdb.sql(full.json.runs.filter((r: { run_id: string | null }) => r.run_id !== null).map((r: { run_id: string }) => r.run_id))}`;
  t.ok(rows.every((r) => r.trigger === 'cli'));
  t.equal((await wombat(['run', 'full', '--params', '{}'], env)).code, 2);
});

t.test('run full skips a step whose prerequisite failed, as the engine skips a waiting run', async (t) => {
  fake.upbit.inject('500', 10_000);
  t.teardown(() => fake.upbit.clearFaults());
  const full = await wombat(['run', 'full', '--json'], env);
  t.equal(full.code, 1, 'a failed step fails the command');
  t.match(full.json.runs.slice(0, 2), [
    { job: 'collect-symbols', state: 'failed', run_id: String },
    { job: 'collect-prices', state: 'skipped', run_id: null, reason: 'dependency_failed: collect-prices waits for collect-symbols, which did not complete' },
  ]);
});

t.test('help, usage errors, configuration and an unreachable database have their exit codes', async (t) => {
  // npm ci links the bin into node_modules/.bin, where npx and npm scripts find it.
  t.equal(realpathSync(path.join(repoRoot, 'node_modules', '.bin', 'wombat')), realpathSync(bin), 'npx wombat runs this executable');
  const help = await wombatProcess(['--help'], {});
  t.equal(help.code, 0);
  for (const cmd of ['status', 'schedules', 'trigger', 'run', 'runs', 'task', 'dlq', 'workers', 'engine']) t.match(help.stdout, new RegExp(`^  ${cmd}\\b`, 'm'), `${cmd} is listed`);
  t.match(help.stdout, /Exit codes:\n\s+0 /);
  const sub = await wombatProcess(['trigger', '--help'], {});
  t.equal(sub.code, 0);
  t.match(sub.stdout, /--wait/);
  t.match(sub.stdout, /--json/, 'global options shown in each command\'s help');

  const completion = await wombatProcess(['completion', 'bash'], {});
  t.equal(completion.code, 0);
  t.match(completion.stdout, /complete -F _wombat wombat/);
  t.match(completion.stdout, /"schedules create"\) opts="[^"]*--cron/, 'subcommand flags come from the command definitions');
  t.equal((await wombatProcess(['completion', 'fish'], {})).code, 2);

  const unknown = await wombatProcess(['frobnicate'], {});
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown command 'frobnicate'/);
  const missing = await wombatProcess(['trigger'], {});
  t.equal(missing.code, 2);
  t.match(missing.stderr, /missing required argument 'target'/);

  const purgeHelp = await wombatProcess(['dlq', 'purge', '--help'], {});
  t.equal(purgeHelp.code, 0);
  t.match(purgeHelp.stdout, /--older-than <hours>\s+\(required\) delete those/, '--help says which options are required');
  t.notMatch(purgeHelp.stdout, /--job <job>\s+\(required\)/);

  const badConfig = await wombatProcess(['status'], { DATABASE_URL: 'mysql://x' });
  t.equal(badConfig.code, 2);
  t.match(badConfig.stderr, /^wombat: DATABASE_URL=\(value hidden\): must start with postgres:\/\//);

  // No DATABASE_URL and no npm start running in the checkout (its data directory here is empty).
  const nothing = await wombatProcess(['status'], { EMBEDDED_PG_DIR: path.join(await tempDir(t), 'pg') });
  t.equal(nothing.code, 2);
  t.match(nothing.stderr, /^wombat: DATABASE_URL is not set and no npm start runs in this checkout .*set DATABASE_URL .*or start Wombat with npm start\n$/);

  const port = await freePort();
  const down = await wombatProcess(['status', '--json'], { DATABASE_URL: `postgres://nobody@127.0.0.1:${port}/none` });
  t.equal(down.code, 4, 'an unreachable database exits 4');
  t.match(down.stderr, /^wombat: cannot reach PostgreSQL/);
  t.equal(down.stderr.trim().split('\n').length, 1, 'one line');
});

t.test('Ctrl-C stops an in-process run: exit 130, the run ends cancelled', async (t) => {
  // The exchange never answers, so the job is still waiting when the operator presses Ctrl-C.
  fake.upbit.inject('timeout', 20);
  t.teardown(() => fake.upbit.clearFaults());
  const child = spawn(bin, ['run', 'fetch-candles', '--params', '{"exchange":"upbit","symbol":"KRW-ETH","timeframe":"1D","daysBack":3}'], {
    env: { PATH: process.env.PATH ?? '', ...env, COLLECTOR_REQUEST_TIMEOUT_MS: '300000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  let running: { id: string }[] = [];
  for (let i = 0; i < 1200 && running.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    running = await tdb.sql<{ id: string }[]>`select id from wombat.runs where trigger = 'cli' and state = 'running' and params->>'symbol' = 'KRW-ETH'`;
  }
  t.equal(running.length, 1, 'the run is recorded as running while it runs');
  child.kill('SIGINT');
  t.equal(await exited, 130, out);
  const [row] = await tdb.sql<{ state: string; error: { code: string } }[]>`select state, error from wombat.runs where id = ${running[0]!.id}`;
  t.match(row, { state: 'cancelled', error: { code: 'interrupted' } });
});
