import t from 'tap';
import path from 'node:path';
import { PermanentError } from '@wombat/core/platform';
import { createTestDatabase, testLogger } from '@wombat/core/testing';
import { createCollectors, createLimiter, createPgBudgetStore } from '@wombat/collectors';
import { fakeExchange, runNode, tempDataRoot } from './helpers.ts';

const here = import.meta.dirname;

const worker = (input: object) => runNode(path.join(here, 'fixtures', 'collect-worker.ts'), [JSON.stringify(input)]);
const lastLine = (s: string) => JSON.parse(s.trim().split('\n').at(-1)!) as { ok: number; failed: number; requests: number; errors: unknown[] };

t.test('two workers and a script share one Upbit budget and one KIS app key: no 418, no EGW00201', async (t) => {
  const fake = await fakeExchange(t, { kis: { accountType: 'real' } });
  const db = await createTestDatabase(t);
  const dataRoot = await tempDataRoot(t);
  const base = { databaseUrl: db.url, upbitUrl: fake.url, kisUrl: fake.url, dataRoot };
  const kisTasks = (symbols: string[]) => symbols.map((symbol) => ({ exchange: 'kis' as const, symbol, timeframe: '1D' as const, from: '2015-01-01T00:00:00Z' }));
  const [a, b, script] = await Promise.all([
    worker({ ...base, tasks: [{ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1m', daysBack: 1 }, { exchange: 'upbit', symbol: 'KRW-ETH', timeframe: '1m', daysBack: 1 }, ...kisTasks(['005930', '000660'])] }),
    worker({ ...base, tasks: [{ exchange: 'upbit', symbol: 'KRW-GAP', timeframe: '1m', daysBack: 2 }, { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '5m', daysBack: 5 }, ...kisTasks(['035720', '091990'])] }),
    runNode(path.join(here, '..', 'scripts', 'collect-price-data.ts'), ['--exchange', 'upbit', '--symbols', 'KRW-ETH,KRW-BTC', '--timeframes', '3m', '--days-back', '3'], {
      DATABASE_URL: db.url,
      DATA_ROOT: dataRoot,
      UPBIT_BASE_URL: fake.url,
    }),
  ]);
  t.equal(a.code, 0, a.stderr);
  t.equal(b.code, 0, b.stderr);
  t.equal(script.code, 0, script.stderr);
  t.match(lastLine(a.stdout), { ok: 4, failed: 0 }, a.stdout);
  t.match(lastLine(b.stdout), { ok: 4, failed: 0 }, b.stdout);
  t.match(script.stdout, /for 2 of 2 series/);
  t.notMatch(script.stdout, /budgets are local/, 'with DATABASE_URL the script shares the budget');

  const upbit = fake.requests.upbit;
  t.ok(upbit.total > 40, `enough Upbit load to overdraw 10/s unshared (${upbit.total} requests)`);
  t.equal(upbit.byStatus[418] ?? 0, 0, 'no 418');
  t.ok((upbit.byStatus[429] ?? 0) <= 0.01 * upbit.total, `429 share ${upbit.byStatus[429] ?? 0}/${upbit.total} within 1%`);
  t.equal(fake.kis.refused.EGW00201, 0, 'no EGW00201');
  t.equal(fake.kis.refused.EGW00133, 0, 'no token refused');
  t.equal(fake.kis.tokensIssued, 1, 'one token for every process');
  const budgets = await db.sql<{ name: string }[]>`select name from wombat.exchange_budgets order by name`;
  const host = new URL(fake.url).host;
  t.ok(budgets.some((r) => r.name === `upbit:${host}:candles`) && budgets.some((r) => r.name.startsWith(`kis:${host}:`)), 'the budgets live in PostgreSQL');
});

t.test('a 418 recorded by one process stops the others; its run reports it in progress and error', async (t) => {
  const fake = await fakeExchange(t);
  const db = await createTestDatabase(t);
  const dataRoot = await tempDataRoot(t);
  // Two limiters on one database behave like two processes: they share nothing else.
  const make = () => {
    const limiter = createLimiter({ store: createPgBudgetStore(db.db) });
    t.teardown(() => limiter.stop());
    return createCollectors({ db: db.db, limiter, dataRoot, storage: 'parquet', upbit: { baseUrl: fake.url }, log: testLogger(), retryBaseDelayMs: 20 });
  };
  const [one, two] = [make(), make()];
  fake.upbit.inject('418');
  const messages: string[] = [];
  const err = await one.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H', daysBack: 2 }, { onProgress: (_f, m) => m && messages.push(m) }).catch((e: unknown) => e);
  t.type(err, PermanentError);
  t.match((err as Error).message, /banned this IP \(HTTP 418\)/);
  t.ok(messages.some((m) => /banned this IP \(HTTP 418\)/.test(m)), 'the progress message says so');
  const sent = fake.requests.upbit.total;
  const other = await two.fetchCandles({ exchange: 'upbit', symbol: 'KRW-ETH', timeframe: '1H', daysBack: 2 }, {}).catch((e: unknown) => e);
  t.type(other, PermanentError);
  t.match((other as Error).message, /banned this IP \(HTTP 418\).*until/);
  t.equal(fake.requests.upbit.total, sent, 'the other process sends nothing while the ban lasts');
});

t.test('a 429 and an EGW00201 pause every process sharing the budget, and the collection still completes', async (t) => {
  // The fake allows KIS 3/s while the clients believe 18/s: someone outside the budget spends it.
  const fake = await fakeExchange(t, { kis: { requestsPerSecond: 3 } });
  const db = await createTestDatabase(t);
  const dataRoot = await tempDataRoot(t);
  const limiter = createLimiter({ store: createPgBudgetStore(db.db) });
  t.teardown(() => limiter.stop());
  const c = createCollectors({
    db: db.db,
    limiter,
    dataRoot,
    storage: 'parquet',
    upbit: { baseUrl: fake.url },
    kis: { baseUrl: fake.url, appKey: 'k', appSecret: 's', accountType: 'real' },
    log: testLogger(),
    retryBaseDelayMs: 20,
  });
  fake.upbit.inject('429');
  const messages: string[] = [];
  const onProgress = (_f: number, m?: string) => void (m && messages.push(m));
  const up = await c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H', daysBack: 2 }, { onProgress });
  t.ok(up.fetched > 40);
  const [paused] = await db.sql<{ pause_code: string; paused_until_ms: string }[]>`select pause_code, paused_until_ms from wombat.exchange_budgets where name like 'upbit:%:candles'`;
  t.equal(paused?.pause_code, 'upbit_429', 'the 429 is recorded for everyone');
  const kis = await Promise.all(['005930', '000660'].map((symbol) => c.fetchCandles({ exchange: 'kis', symbol, timeframe: '1D', from: '2022-01-01T00:00:00Z' }, { onProgress })));
  t.ok(kis.every((r) => r.fetched > 300));
  t.ok(fake.kis.refused.EGW00201 > 0, 'KIS did refuse');
  const [kisRow] = await db.sql<{ pause_code: string }[]>`select pause_code from wombat.exchange_budgets where name like 'kis:%'`;
  t.equal(kisRow?.pause_code, 'EGW00201');
  t.ok(messages.some((m) => /429/.test(m)) && messages.some((m) => /EGW00201/.test(m)), 'the runs report the pauses in their progress');
});
