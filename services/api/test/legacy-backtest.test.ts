import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { ADMIN_TOKEN, serviceStarter, startTestApi } from './helpers.ts';

/**
 * The replaced system's backtest client, byte for byte: its run-async body, its polling of
 * /api/backtests/status/{id} and its retry, against the api and a real worker reading candles
 * stored in PostgreSQL.
 */
t.setTimeout(300_000);
const api = await startTestApi(t);
const { sql } = api.database;

const OLD_BODY = '{"strategy": "volume_zone_breakout", "symbols": ["BTC_KRW", "ETH_KRW"], "start_date": "2024-01-01", "end_date": "2024-12-31"}';

// Daily candles from 2023-12-01 to 2025-01-31: the days outside 2024 must not be read. A wave with
// volume spikes, so the strategy has breakouts to take; ETH's is out of phase with BTC's.
await sql`
  insert into wombat.candles (exchange, symbol, timeframe, time, open, high, low, close, volume, quote_volume)
  select 'upbit', s.symbol, '1D', ts, p, p * 1.01, p * 0.99, p * (1 + 0.004 * sin(n / 3.0)), case when n % 9 = 0 then 5000 else 1000 + 50 * (n % 7) end, p * 1000
  from (values ('KRW-BTC', 0.0), ('KRW-ETH', 2.0)) s(symbol, phase),
       generate_series('2023-12-01'::timestamptz, '2025-01-31'::timestamptz, interval '1 day') with ordinality g(ts, n),
       lateral (select 100 + 12 * sin(n / 9.0 + s.phase) + n * 0.03 as p) price`;

/** As the old client sends: JSON with requests' default headers, or nothing at all. */
async function send(method: string, urlPath: string, body?: string) {
  const res = await fetch(api.url + urlPath, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, text };
}

async function poll(id: string) {
  const seen: string[] = [];
  for (let i = 0; i < 1200; i++) {
    const status = await send('GET', `/api/backtests/status/${id}`);
    seen.push(status.body.status);
    if (status.body.status === 'completed' || status.body.status === 'failed') return { final: status.body, seen };
    await sleep(100);
  }
  throw new Error(`backtest ${id} did not finish`);
}

const startService = serviceStarter(t, api.database.url);

t.test('the old client\'s body is accepted as sent: 202 {task_id, status, created_at}', async (t) => {
  const submitted = await send('POST', '/api/backtests/run-async', OLD_BODY);
  t.equal(submitted.status, 202, submitted.text);
  t.same(Object.keys(submitted.body).sort(), ['created_at', 'status', 'task_id']);
  t.match(submitted.body, { task_id: /^[0-9a-f-]{36}$/, status: 'queued' });
  t.ok(Math.abs(Date.parse(submitted.body.created_at) - Date.now()) < 60_000, 'created_at is now, as an ISO instant');
  const [run] = await sql<{ job: string; params: unknown }[]>`select job, params from wombat.runs where id = ${submitted.body.task_id}`;
  t.same(run, {
    job: 'backtest',
    // BTC_KRW is Upbit's KRW-BTC; the end date is included: the range ends at the start of 2025-01-01 (UTC).
    params: { strategy: 'volume-zone-breakout', exchange: 'upbit', symbols: ['KRW-BTC', 'KRW-ETH'], from: '2024-01-01T00:00:00.000Z', to: '2025-01-01T00:00:00.000Z' },
  });

  const queued = await send('GET', `/api/backtests/status/${submitted.body.task_id}`);
  t.equal(queued.status, 200);
  t.match(queued.body, { task_id: submitted.body.task_id, status: 'queued', progress: 0, result: null, error: null });
});

t.test('a worker runs it: status goes queued, running, completed, with each symbol and the combined figures', async (t) => {
  const submitted = await send('POST', '/api/backtests/run-async', OLD_BODY);
  startService('worker', { STORAGE: 'postgres', WORKER_QUEUES: 'backtest', WORKER_PROGRESS_INTERVAL_MS: '0' });
  const { final, seen } = await poll(submitted.body.task_id);
  t.ok(seen.every((s) => ['queued', 'running', 'completed'].includes(s)), `only the old states: ${[...new Set(seen)].join(', ')}`);
  t.match(final, { status: 'completed', progress: 1, error: null, state: 'completed' });
  const { result } = final;
  t.equal(result.strategy, 'volume-zone-breakout');
  t.same(Object.keys(result.symbols).sort(), ['KRW-BTC', 'KRW-ETH']);
  const btc = result.symbols['KRW-BTC'];
  const eth = result.symbols['KRW-ETH'];
  // 2024 is a leap year: 366 days, the first and the last included, none of December 2023 or January 2025.
  t.equal(btc.candles, 366);
  t.equal(eth.candles, 366);
  t.equal(btc.initialCash, 500_000, 'each symbol trades its half of the default 1,000,000');
  t.ok(btc.trades > 0 && eth.trades > 0, `both traded (${btc.trades}, ${eth.trades})`);
  t.match(result.summary, { initialCash: 1_000_000, candles: 732, trades: btc.trades + eth.trades });
  t.ok(Math.abs(result.summary.finalEquity - (btc.finalEquity + eth.finalEquity)) <= 2e-6, 'combined equity is the sum of the symbols\'');
  t.equal(result.trades.length, btc.trades + eth.trades);
  t.ok(result.trades.every((tr: { entryTime: string; exitTime: string }) => tr.entryTime >= '2024-01-01' && tr.exitTime < '2025-01-01'), 'every trade inside the range');
});

t.test('a backtest that fails answers status failed with error as a message', async (t) => {
  const submitted = await send('POST', '/api/backtests/run-async', '{"strategy": "volume_zone_breakout", "symbols": ["XRP_KRW"], "start_date": "2024-01-01", "end_date": "2024-12-31"}');
  t.equal(submitted.status, 202);
  const { final } = await poll(submitted.body.task_id);
  t.match(final, { status: 'failed', progress: Number, result: null, error: /no 1D candles are stored for upbit KRW-XRP/, state: 'failed', error_detail: { code: 'no_candles' } });
  t.equal(typeof final.error, 'string');

  // The old client's retry: a bare POST.
  const retried = await send('POST', `/api/backtests/retry/${submitted.body.task_id}`);
  t.equal(retried.status, 202, retried.text);
  t.match(retried.body, { task_id: String, status: 'queued', created_at: String, retry_of: submitted.body.task_id });
  const again = await poll(retried.body.task_id);
  t.equal(again.final.status, 'failed');
});

t.test('what cannot be mapped is refused, each problem named in the old body\'s terms', async (t) => {
  const cases: [string, RegExp][] = [
    ['{"strategy": "volume_zone_breakout", "symbols": ["BTC_USD"], "start_date": "2024-01-01", "end_date": "2024-12-31"}', /symbols\[0\] "BTC_USD" cannot be an Upbit market: Upbit quotes in KRW, BTC, USDT, not USD/],
    ['{"strategy": "volume_zone_breakout", "symbols": ["BTC"], "start_date": "2024-01-01", "end_date": "2024-12-31"}', /symbols\[0\] "BTC" names no Upbit market: write it as BASE_QUOTE, e\.g\. BTC_KRW/],
    ['{"strategy": "volume_zone_breakout", "symbols": ["BTC_KRW", "KRW-BTC"], "start_date": "2024-01-01", "end_date": "2024-12-31"}', /symbols\[1\] "KRW-BTC" is KRW-BTC again/],
    ['{"strategy": "volume_zone_breakout", "symbols": [], "start_date": "2024-01-01", "end_date": "2024-12-31"}', /symbols must be a non-empty list/],
    ['{"strategy": "volume_zone_breakout", "symbol": "BTC_KRW", "symbols": ["ETH_KRW"], "start_date": "2024-01-01", "end_date": "2024-12-31"}', /give symbol \(one\) or symbols \(a list\), not both/],
    ['{"strategy": "volume_zone_breakout", "symbols": ["BTC_KRW"], "start_date": "2024-02-30", "end_date": "2024-12-31"}', /start_date "2024-02-30" must be a date/],
    ['{"strategy": "volume_zone_breakout", "symbols": ["BTC_KRW"], "start_date": "2024-12-31", "end_date": "2024-01-01"}', /end_date 2024-01-01 is before start_date 2024-12-31/],
    ['{"strategy": "volume_zone_breakout", "symbols": ["BTC_KRW"], "start_date": "2024-01-01", "end_date": "2024-12-31", "from": "2024-01-01T00:00:00Z"}', /from is Wombat's field/],
  ];
  for (const [body, message] of cases) {
    const res = await send('POST', '/api/backtests/run-async', body);
    t.equal(res.status, 400, body);
    t.match(res.body.error.message, message, body);
  }
  // Option values are the strategy's to judge: the worker fails the task at once, saying why.
  const zeroZones = await send('POST', '/api/backtests/run-async', '{"strategy": "volume_zone", "symbols": ["BTC_KRW"], "start_date": "2024-01-01", "end_date": "2024-12-31", "num_zones": 0}');
  t.equal(zeroZones.status, 202, zeroZones.text);
  t.match((await poll(zeroZones.body.task_id)).final, { status: 'failed', error: /params\.options\.zones must be an integer from 1 to 200/ });

  // A start equal to the end is that one day.
  const oneDay = await send('POST', '/api/backtests/run-async', '{"strategy": "volume_zone_breakout", "symbols": ["BTC_KRW"], "start_date": "2024-03-01", "end_date": "2024-03-01", "zones": 5, "stop_pct": 3}');
  t.equal(oneDay.status, 202, oneDay.text);
  const [run] = await sql<{ params: { from: string; to: string; options: unknown } }[]>`select params from wombat.runs where id = ${oneDay.body.task_id}`;
  t.same(run!.params, { strategy: 'volume-zone-breakout', exchange: 'upbit', symbols: ['KRW-BTC'], from: '2024-03-01T00:00:00.000Z', to: '2024-03-02T00:00:00.000Z', options: { zones: 5, stopPct: 3 } });
});
