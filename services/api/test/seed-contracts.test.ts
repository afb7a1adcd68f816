import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { repoRoot } from '@wombat/core/platform';
import { upsertBuiltInSchedule } from '@wombat/core/schedules';
import t from 'tap';
import { ADMIN_TOKEN, startTestApi } from './helpers.ts';

/**
 * The replaced system's HTTP contracts, with requests exactly as its clients sent
 * them (Python requests / fetch: bare POSTs, JSON bodies in its own shape).
 */
const api = await startTestApi(t);
const { db, sql } = api.database;
const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

async function raw(method: string, urlPath: string, init: { headers?: Record<string, string>; body?: string } = {}) {
  const res = await fetch(api.url + urlPath, { method, headers: { ...auth, ...init.headers }, ...(init.body !== undefined ? { body: init.body } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, text };
}

// The engine creates this built-in at start; here it is created as the engine does, without one.
const daily = await upsertBuiltInSchedule(db, {
  name: 'daily-candles',
  job: 'collect-prices',
  trigger: { kind: 'times', times: ['09:00'] },
  timezone: 'UTC',
  params: { exchanges: ['upbit'], symbols: ['KRW-BTC', 'KRW-ETH'], timeframes: ['1H', '1D'] },
  overlap: 'skip',
  missed: 'once',
  catchupWindowSeconds: 86_400,
  catchupMax: 1,
  jitterSeconds: 0,
  timeoutSeconds: null,
  maxRetries: null,
  retryDelaySeconds: null,
  retryBackoff: null,
  status: 'active',
  pausedReason: null,
  after: [],
  waitForSeconds: 3600,
});

t.test('POST /api/scheduler/trigger with no body runs the daily candle collection now', async (t) => {
  // requests.post(f"{base}/api/scheduler/trigger"): no body, no content type.
  const bare = await raw('POST', '/api/scheduler/trigger');
  t.equal(bare.status, 202, bare.text);
  t.match(bare.body, { run_id: String, status: 'queued' });
  const [run] = await sql<{ job: string; trigger: string; schedule_id: number; params: unknown }[]>`select job, trigger, schedule_id, params from wombat.runs where id = ${bare.body.run_id}`;
  t.same(run, { job: 'collect-prices', trigger: 'manual', schedule_id: daily.id, params: daily.params });

  // fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'}}): a JSON content type and no body.
  const jsonNoBody = await raw('POST', '/api/scheduler/trigger', { headers: { 'content-type': 'application/json' } });
  t.equal(jsonNoBody.status, 202, jsonNoBody.text);
  t.not(jsonNoBody.body.run_id, bare.body.run_id);
  const emptyObject = await raw('POST', '/api/scheduler/trigger', { headers: { 'content-type': 'application/json' }, body: '{}' });
  t.equal(emptyObject.status, 202);

  const both = await raw('POST', '/api/scheduler/trigger', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ schedule_id: daily.id, job: 'canary' }) });
  t.equal(both.status, 400);
  t.match(both.body.error.message, /not both/);
  t.equal((await raw('POST', '/api/scheduler/trigger', { headers: { 'content-type': 'application/json' }, body: '{"oops' })).status, 400, 'malformed JSON is still refused');
});

t.test('GET /api/scheduler/status carries running and jobs beside today\'s fields', async (t) => {
  const idle = await raw('GET', '/api/scheduler/status', { headers: {} });
  t.equal(idle.status, 200);
  t.equal(idle.body.running, false, 'no engine heartbeat');
  t.same(idle.body.jobs, [{ id: String(daily.id), name: 'daily-candles', trigger: 'at 09:00', next_run: idle.body.jobs[0].next_run }]);
  t.match(idle.body.jobs[0].next_run, /T09:00:00\.000Z$/);
  t.ok(Array.isArray(idle.body.engines) && Array.isArray(idle.body.schedules), 'today\'s fields stay');

  // An engine's heartbeat row, as a live engine keeps it.
  await sql`insert into wombat.engines (id, host, pid, version, heartbeat_interval_ms, enabled) values (${randomUUID()}, 'h', 1, '0.1.0', 60000, true)`;
  const running = await raw('GET', '/api/scheduler/status');
  t.equal(running.body.running, true);
  await sql`update wombat.schedules set status = 'paused' where id = ${daily.id}`;
  const paused = await raw('GET', '/api/scheduler/status');
  t.equal(paused.body.jobs[0].next_run, null, 'a paused job has no next run');
  await sql`update wombat.schedules set status = 'active' where id = ${daily.id}`;
});

t.test('the replaced system\'s backtest body is mapped; status and retry answer under /api/backtests; errors carry no stack', async (t) => {
  const legacy = {
    strategy: 'ma_crossover',
    symbol: 'BTC_KRW',
    start_date: '2024-01-01',
    end_date: '2024-01-31',
    short_window: 5,
    long_window: 20,
    initial_capital: 1_000_000,
  };
  const submitted = await raw('POST', '/api/backtests/run-async', { headers: { 'content-type': 'application/json' }, body: JSON.stringify(legacy) });
  t.equal(submitted.status, 202, submitted.text);
  const id = submitted.body.task_id;
  const [run] = await sql<{ job: string; params: unknown }[]>`select job, params from wombat.runs where id = ${id}`;
  t.same(run, {
    job: 'backtest',
    params: { strategy: 'ma-crossover', exchange: 'upbit', symbols: ['KRW-BTC'], from: '2024-01-01T00:00:00.000Z', to: '2024-02-01T00:00:00.000Z', initialCash: 1_000_000, options: { fast: 5, slow: 20 } },
  });

  const bad = await raw('POST', '/api/backtests/run-async', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...legacy, strategy: 'astrology', start_date: 'soon', colour: 1 }) });
  t.equal(bad.status, 400);
  t.match(bad.body.error.message, /strategy "astrology" is unknown; give ma_crossover, volume_breakout or volume_zone_breakout/);
  t.match(bad.body.error.message, /start_date "soon" must be a date like 2024-01-31/);
  t.match(bad.body.error.message, /colour is not a backtest parameter/);
  const badWindow = await raw('POST', '/api/backtests/run-async', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...legacy, short_window: 'five' }) });
  t.equal(badWindow.status, 400, 'the mapped parameters are checked by the job\'s schema');
  t.match(badWindow.body.error.message, /params\.options\.fast/);

  const queued = await raw('POST', `/api/backtests/retry/${id}`);
  t.equal(queued.status, 409, 'an unfinished backtest is not retried');

  // A real worker runs it: there are no candles, so it fails, and the answer says why without a stack.
  const worker = spawn(process.execPath, [path.join(repoRoot, 'services', 'worker', 'src', 'main.ts')], {
    env: { ...process.env, DATABASE_URL: api.database.url, WORKER_QUEUES: 'backtest', WORKER_POLL_INTERVAL_SECONDS: '0.5', LOG_LEVEL: 'warn', LOG_FORMAT: 'json', STORAGE: 'postgres' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise((resolve) => worker.on('exit', resolve));
  t.teardown(async () => {
    if (worker.exitCode === null) worker.kill('SIGKILL');
    await exited;
  });
  let status = await raw('GET', `/api/backtests/status/${id}`);
  for (let i = 0; i < 600 && !['completed', 'failed'].includes(status.body.status); i++) {
    await sleep(100);
    status = await raw('GET', `/api/backtests/status/${id}`);
  }
  t.match(status.body, { task_id: id, type: 'backtest', status: 'failed', error: /candles/, error_detail: { code: 'no_candles', message: /candles/ } });
  t.notOk('stack' in status.body.error_detail, 'no stack trace in the answer');
  t.notMatch(status.text, /\n\s+at /, 'nothing stack-like anywhere in the body');

  const retried = await raw('POST', `/api/backtests/retry/${id}`);
  t.equal(retried.status, 202, retried.text);
  t.match(retried.body, { task_id: String, status: 'queued', retry_of: id });
  const again = await raw('GET', `/api/backtests/status/${retried.body.task_id}`);
  t.match(again.body, { task_id: retried.body.task_id, retry_of: id });
  t.equal((await raw('POST', `/api/backtests/retry/${randomUUID()}`)).status, 404);
});

t.test('legacy backtest mapping: symbols, timeframes, nested strategy parameters', async (t) => {
  const { mapLegacyBacktest, upbitMarket } = await import('../src/legacy-backtest.ts');
  t.equal(upbitMarket('BTC_KRW'), 'KRW-BTC');
  t.equal(upbitMarket('eth/btc'), 'BTC-ETH');
  t.equal(upbitMarket('KRW-XRP'), 'KRW-XRP');
  const mapped = mapLegacyBacktest({
    strategy: 'VOLUME_BREAKOUT',
    symbol: 'XRP_KRW',
    start_date: '2024-03-01T00:00:00Z',
    end_date: '2024-03-02',
    interval: '1h',
    commission: 0.0005,
    params: { lookback_period: 30, volume_multiplier: 2.5 },
  });
  t.same(mapped, {
    ok: true,
    params: {
      strategy: 'volume-breakout',
      exchange: 'upbit',
      symbols: ['KRW-XRP'],
      from: '2024-03-01T00:00:00.000Z',
      to: '2024-03-03T00:00:00.000Z',
      timeframe: '1H',
      feeRate: 0.0005,
      options: { lookback: 30, volumeMultiplier: 2.5 },
    },
  });
  const missing = mapLegacyBacktest({ strategy: 'ma_crossover', start_date: '2024-01-01' });
  t.match(missing, { ok: false, problems: ['symbol is required, e.g. "BTC_KRW"', /end_date is required/] });
  t.match(mapLegacyBacktest({ strategy: 'ma_crossover', symbol: 'BTC_KRW', start_date: '2024-01-01', end_date: '2024-02-01', timeframe: 'fortnight' }), { ok: false, problems: [/timeframe "fortnight" is not a timeframe/] });
});
