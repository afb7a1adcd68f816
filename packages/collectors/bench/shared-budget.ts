/**
 * Shared request budgets across processes, against the fake exchange (which
 * counts Upbit per client address and KIS per app key, like the exchanges):
 *
 *   - Upbit: 3 worker processes + 1 manual script (collect-price-data with
 *     DATABASE_URL), different markets, one 10 requests/s budget;
 *   - KIS: 2 worker processes on one app key, one 18 requests/s budget;
 *
 * once with one place taken per statement (lease 1) and once with leases of 3.
 * Prints the request rate over the busy period as a share of the limit, the 429
 * share, and the 418 / EGW00201 counts.
 *
 *   npm run bench -w packages/collectors      (or: node deploy/with-postgres.ts node packages/collectors/bench/shared-budget.ts)
 * BENCH_DAYS_BACK (default 4): days of Upbit minute candles per task; BENCH_KIS_FROM
 * (default 2015-01-01): first day of the KIS daily candles; BENCH_LEASES (default 1,3): the
 * lease sizes measured.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createDatabase } from '@wombat/core/platform';
import { migrateAll } from '@wombat/core/setup';
import { createEmptyTestDatabase, testLogger } from '@wombat/core/testing';
import { startFakeExchange, type FakeExchange } from '@wombat/collectors/testing';
import { runNode } from '../test/helpers.ts';

const here = import.meta.dirname;
const workerFile = path.join(here, '..', 'test', 'fixtures', 'collect-worker.ts');
const scriptFile = path.join(here, '..', 'scripts', 'collect-price-data.ts');
const DAYS_BACK = Number(process.env.BENCH_DAYS_BACK ?? 4);
const KIS_FROM = process.env.BENCH_KIS_FROM ?? '2015-01-01';
const LEASES = (process.env.BENCH_LEASES ?? '1,3').split(',').map(Number);

/** A worker or script process, logging errors only. */
const run = (file: string, args: string[], env: Record<string, string> = {}) => runNode(file, args, { LOG_LEVEL: 'error', ...env });

/** First and last moment the counter moved: the busy period the rate is measured over. */
function watch(count: () => number): { stop(): { seconds: number; requests: number } } {
  let first = 0;
  let last = 0;
  let seen = count();
  const start = seen;
  const timer = setInterval(() => {
    const n = count();
    if (n !== seen) {
      if (first === 0) first = performance.now();
      last = performance.now();
      seen = n;
    }
  }, 10);
  return {
    stop() {
      clearInterval(timer);
      return { seconds: (last - first) / 1000, requests: seen - start };
    },
  };
}

function report(name: string, limit: number, w: { seconds: number; requests: number }, extra: string) {
  // The first request of the period was counted when it moved the counter: requests - 1 intervals.
  const rate = (w.requests - 1) / w.seconds;
  console.log(`${name}: ${w.requests} requests in ${w.seconds.toFixed(1)} s = ${rate.toFixed(2)} req/s; limit ${limit}/s: ${((100 * rate) / limit).toFixed(1)}% of the limit; ${extra}`);
}

async function scenario(databaseUrl: string, leaseSize: number) {
  const dataRoot = await mkdtemp(path.join(tmpdir(), 'wombat-bench-'));
  const fake: FakeExchange = await startFakeExchange({ kis: { accountType: 'real' } });
  try {
    const base = { databaseUrl, upbitUrl: fake.url, kisUrl: fake.url, dataRoot, leaseSize };
    const up = (symbols: string[]) => symbols.map((symbol) => ({ exchange: 'upbit', symbol, timeframe: '1m', daysBack: DAYS_BACK }));
    const upbit = watch(() => fake.requests.upbit.total);
    const results = await Promise.all([
      run(workerFile, [JSON.stringify({ ...base, tasks: up(['KRW-BTC', 'KRW-ETH']) })]),
      run(workerFile, [JSON.stringify({ ...base, tasks: up(['KRW-GAP', 'KRW-ETH']) })]),
      run(workerFile, [JSON.stringify({ ...base, tasks: up(['KRW-NEW', 'KRW-BTC']).map((t) => ({ ...t, timeframe: '3m' })) })]),
      run(scriptFile, ['--exchange', 'upbit', '--symbols', 'KRW-ETH,KRW-GAP', '--timeframes', '3m,5m', '--days-back', String(DAYS_BACK * 2)], {
        DATABASE_URL: databaseUrl,
        DATA_ROOT: dataRoot,
        UPBIT_BASE_URL: fake.url,
      }),
    ]);
    const u = upbit.stop();
    for (const r of results) if (r.code !== 0) console.error(`a process failed (${r.code}): ${r.stderr.slice(0, 400)} ${r.stdout.slice(-400)}`);
    const by = fake.requests.upbit.byStatus;
    report(`upbit (3 workers + 1 script, lease ${leaseSize})`, 10, u, `429 share ${(((by[429] ?? 0) / u.requests) * 100).toFixed(2)}% (${by[429] ?? 0}); 418: ${by[418] ?? 0}`);

    const kisCalls = () => fake.requests.kis.total - fake.kis.tokensIssued;
    const kis = watch(kisCalls);
    const k = (symbols: string[]) => symbols.map((symbol) => ({ exchange: 'kis', symbol, timeframe: '1D', from: `${KIS_FROM}T00:00:00Z` }));
    const kr = await Promise.all([
      run(workerFile, [JSON.stringify({ ...base, tasks: k(['005930', '000660', '035720']) })]),
      run(workerFile, [JSON.stringify({ ...base, tasks: k(['247540', '091990', '005930']) })]),
    ]);
    const kw = kis.stop();
    for (const r of kr) if (r.code !== 0) console.error(`a process failed (${r.code}): ${r.stderr.slice(0, 400)}`);
    report(`kis (2 workers, one app key, lease ${leaseSize})`, 18, kw, `EGW00201: ${fake.kis.refused.EGW00201}; tokens issued: ${fake.kis.tokensIssued} (EGW00133 refusals: ${fake.kis.refused.EGW00133})`);
  } finally {
    await fake.close();
    await rm(dataRoot, { recursive: true, force: true });
  }
}

const teardowns: (() => unknown)[] = [];
try {
  for (const leaseSize of LEASES) {
    const { url, name } = await createEmptyTestDatabase({ teardown: (fn: () => unknown) => void teardowns.push(fn) }, 'wombat_bench');
    await migrateAll({ url, log: testLogger('bench') });
    const database = createDatabase({ url, poolSize: 1, applicationName: 'wombat-bench' });
    // Counts the budget statements (needs a superuser, as the embedded test server has).
    const counted = await database.sql.unsafe(`alter database "${name}" set track_functions = 'pl'`).then(() => true, () => false);
    await scenario(url, leaseSize);
    if (counted) {
      await new Promise((r) => setTimeout(r, 1500));
      const rows = await database.sql<{ funcname: string; calls: string }[]>`select funcname, calls from pg_stat_user_functions where funcname like 'budget_%' order by funcname`;
      console.log(`  budget statements (lease ${leaseSize}): ${rows.map((r) => `${r.funcname} ${r.calls}`).join(', ')}`);
    }
    await database.close();
  }
} finally {
  for (const fn of teardowns.reverse()) await fn();
}
