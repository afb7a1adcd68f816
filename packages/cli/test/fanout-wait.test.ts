import t from 'tap';
import { startFakeExchange } from '@wombat/collectors/testing';
import { createTestDatabase } from '@wombat/core/testing';
import { startWorker, tempDir, wombat, wombatProcess } from './helpers.ts';

/**
 * `--wait` on a fan-out (collect-prices: one fetch-candles run per series) waits for
 * the children, reports how many ended in each state and succeeds only when all
 * completed. A real worker runs the jobs against a fake Upbit; KRW-NOPE is a market
 * it does not know, which fails at once (no retries: Upbit answered 404).
 */
t.setTimeout(600_000);
const tdb = await createTestDatabase(t);
const fake = await startFakeExchange();
t.teardown(() => fake.close());
const dataRoot = await tempDir(t);
const env = { DATABASE_URL: tdb.url, TZ: 'UTC', DATA_ROOT: dataRoot, UPBIT_BASE_URL: fake.url };
// The fan-out's own queue only, at first: its children wait until a second worker takes fetch-candles.
await startWorker(t, { ...env, WORKER_QUEUES: 'collect-prices' });

const params = (symbols: string[]) => JSON.stringify({ exchanges: ['upbit'], symbols, timeframes: ['1D'], daysBack: 2 });

// Kept for the file: the later tests need it too.
const fileTap = t;

t.test('trigger --wait waits for the children of a fan-out, exits 1 when one failed, and says how many ended in each state', async (t) => {
  const waiting = wombatProcess(['trigger', 'collect-prices', '--job', '--params', params(['KRW-BTC', 'KRW-NOPE', 'KRW-ETH']), '--wait'], env);
  let parent: { state: string } | undefined;
  for (let i = 0; i < 1200 && parent?.state !== 'completed'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    [parent] = await tdb.sql<{ state: string }[]>`select state from wombat.runs where job = 'collect-prices' and parent_id is null`;
  }
  t.equal(parent?.state, 'completed', 'the fan-out itself completed, its children queued');
  // Well past a poll of the command: it must still be waiting, for the children.
  await new Promise((r) => setTimeout(r, 1500));
  const early = await Promise.race([waiting, new Promise<'still waiting'>((r) => setTimeout(() => r('still waiting'), 0))]);
  t.equal(early, 'still waiting', 'it did not return while the children were queued');
  await startWorker(fileTap, { ...env, WORKER_QUEUES: 'fetch-candles' });

  const ran = await waiting;
  t.equal(ran.code, 1, `${ran.stdout}\n${ran.stderr}`);
  t.match(ran.stdout, /^state:\s+completed$/m);
  t.match(ran.stdout, /^children:\s+3: 2 completed, 1 failed$/m);
  t.match(ran.stderr, /completed, waiting for children 3: 3 queued/, 'it said what it was waiting for');

  const runId = /^id:\s+(\S+)$/m.exec(ran.stdout)![1]!;
  const [active] = await tdb.sql<{ n: number }[]>`select count(*)::int as n from wombat.runs where parent_id = ${runId} and state in ('queued', 'running', 'retrying')`;
  t.equal(active!.n, 0, 'every child had finished when it returned');

  const task = await wombat(['task', runId], env);
  t.equal(task.code, 0);
  t.match(task.stdout, /^children:\s+3: 2 completed, 1 failed$/m, 'wombat task shows the tally');
  const asJson = await wombat(['task', runId, '--json'], env);
  t.match(asJson.json.children, { total: 3, active: 0, by_state: { completed: 2, failed: 1 } });
});

t.test('trigger --wait exits 0 when every child completed; --json carries the tally', async (t) => {
  const ran = await wombat(['trigger', 'collect-prices', '--job', '--params', params(['KRW-BTC', 'KRW-ETH']), '--wait', '--json'], env);
  t.equal(ran.code, 0, `${ran.stdout}\n${ran.stderr}`);
  t.match(ran.json, { state: 'completed', children: { total: 2, active: 0, by_state: { completed: 2 } } });
});

t.test('a run that is no fan-out has no children line and its own outcome', async (t) => {
  const ran = await wombat(['trigger', 'fetch-candles', '--params', JSON.stringify({ exchange: 'upbit', symbol: 'KRW-NOPE', timeframe: '1D', daysBack: 2 }), '--wait'], env);
  t.equal(ran.code, 1);
  t.match(ran.stdout, /^state:\s+failed$/m);
  t.notMatch(ran.stdout, /children/);
});
