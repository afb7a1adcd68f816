import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startFakeExchange } from '@wombat/collectors/testing';
import { freePort } from '@wombat/core';
import { createTestDatabase } from '@wombat/core/testing';
import { tempDir, wombat } from './helpers.ts';

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

t.test('run full runs the daily pipeline in order, each step its own cli run', async (t) => {
  const full = await wombat(['run', 'full', '--json'], env);
  t.equal(full.code, 0, full.stderr);
  const steps = full.json.runs.map((r: { job: string }) => r.job);
  t.same(steps.slice(0, 2), ['collect-symbols', 'collect-prices'], 'symbols, then prices');
  t.ok(full.json.runs.every((r: { state: string }) => r.state === 'completed'));
  const prices = full.json.runs[1];
  t.match(prices.result, { exchanges: ['upbit'], series: 5 }, 'every active Upbit symbol, 1D');
  const rows = await tdb.sql<{ job: string; trigger: string }[]>`select job, trigger from wombat.runs where id in ${tdb.sql(full.json.runs.map((r: { run_id: string }) => r.run_id))}`;
  t.ok(rows.every((r) => r.trigger === 'cli'));
  t.equal((await wombat(['run', 'full', '--params', '{}'], env)).code, 2);
});

t.test('help, usage errors, configuration and an unreachable database have their exit codes', async (t) => {
  const help = await wombat(['--help'], {});
  t.equal(help.code, 0);
  for (const cmd of ['status', 'schedules', 'trigger', 'run', 'runs', 'task', 'dlq', 'workers', 'engine']) t.match(help.stdout, new RegExp(`^  ${cmd}\\b`, 'm'), `${cmd} is listed`);
  t.match(help.stdout, /Exit codes:\n\s+0 /);
  const sub = await wombat(['trigger', '--help'], {});
  t.equal(sub.code, 0);
  t.match(sub.stdout, /--wait/);
  t.match(sub.stdout, /--json/, 'global options shown in each command\'s help');

  const unknown = await wombat(['frobnicate'], {});
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown command 'frobnicate'/);
  const missing = await wombat(['trigger'], {});
  t.equal(missing.code, 2);
  t.match(missing.stderr, /missing required argument 'target'/);

  const badConfig = await wombat(['status'], { DATABASE_URL: 'mysql://x' });
  t.equal(badConfig.code, 2);
  t.match(badConfig.stderr, /^wombat: DATABASE_URL=\(value hidden\): must start with postgres:\/\//);

  const port = await freePort();
  const down = await wombat(['status', '--json'], { DATABASE_URL: `postgres://nobody@127.0.0.1:${port}/none` });
  t.equal(down.code, 4, 'an unreachable database exits 4');
  t.match(down.stderr, /^wombat: cannot reach PostgreSQL/);
  t.equal(down.stderr.trim().split('\n').length, 1, 'one line');
});
