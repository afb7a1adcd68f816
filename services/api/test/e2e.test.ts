import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { serviceStarter, startTestApi, unknownMarketUpbit, type TestApi } from './helpers.ts';

/**
 * Black-box: the api in process, the real scheduler-engine and worker as child
 * processes on this file's database, everything observed over HTTP.
 */
const api = await startTestApi(t);
const { sql } = api.database;

const SYMBOLS = ['KRW-BTC', 'KRW-ETH', 'KRW-XRP'];
const FROM = '2024-01-01T00:00:00Z';
const TO = '2024-01-31T00:00:00Z';
// One-minute candles in Postgres: 43,200 per symbol, enough for a backtest that reports progress for a while.
await sql`
  insert into wombat.candles (exchange, symbol, timeframe, time, open, high, low, close, volume, quote_volume)
  select 'upbit', s, '1m', ts, p, p * 1.002, p * 0.998, p * (1 + 0.001 * sin(n / 7.0)), 10 + (n % 13), p * 10
  from unnest(${SYMBOLS}::text[]) s,
       generate_series(${FROM}::timestamptz, ${TO}::timestamptz - interval '1 minute', interval '1 minute') with ordinality g(ts, n),
       lateral (select 100 + 10 * sin(n / 600.0) + 3 * sin(n / 37.0) as p) price`;

const startService = serviceStarter(t, api.database.url);
const upbitUrl = await unknownMarketUpbit(t);

startService('worker', { STORAGE: 'postgres', WORKER_PROGRESS_INTERVAL_MS: '0', WORKER_HISTORY_FLUSH_MS: '20', UPBIT_BASE_URL: upbitUrl });
startService('scheduler-engine', { ENGINE_HEARTBEAT_INTERVAL_MS: '200' });

const backtest = { strategy: 'ma-crossover', exchange: 'upbit', symbols: SYMBOLS, timeframe: '1m', from: FROM, to: TO };

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    await sleep(25);
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function task(a: TestApi, id: string) {
  return (await a.call('GET', `/api/tasks/${id}`)).body;
}

t.test('a backtest task goes queued -> running with rising progress -> completed with its result', async (t) => {
  const submitted = await api.call('POST', '/api/backtests/run-async', { body: backtest });
  t.equal(submitted.status, 202);
  const id = submitted.body.task_id;
  const seen: { status: string; progress: number }[] = [];
  const final = await until('the backtest to finish', async () => {
    const s = await task(api, id);
    seen.push({ status: s.status, progress: s.progress });
    return ['completed', 'failed', 'cancelled'].includes(s.status) ? s : undefined;
  }, 60_000);
  t.equal(final.status, 'completed', final.error ? JSON.stringify(final.error) : 'the backtest completed');
  t.equal(final.progress, 1);
  t.match(final.result, { strategy: 'ma-crossover', summary: Object, trades: Array });
  t.ok(final.started_at && final.finished_at && final.duration_ms >= 0);
  const order = ['queued', 'running', 'completed'];
  const ranks = seen.map((s) => order.indexOf(s.status));
  t.same(ranks, [...ranks].sort((a, b) => a - b), 'status only moves forward');
  const progress = seen.map((s) => s.progress);
  t.same(progress, [...progress].sort((a, b) => a - b), 'progress never goes back');
  t.ok(seen.some((s) => s.status === 'running' && s.progress > 0 && s.progress < 1), 'progress was reported while running');
  const retried = await api.call('POST', `/api/tasks/${id}/retry`);
  t.equal(retried.status, 202);
  const second = await until('the retry to finish', async () => {
    const s = await task(api, retried.body.task_id);
    return s.status === 'completed' ? s : undefined;
  }, 60_000);
  t.same(second.result.summary, final.result.summary, 'the retry ran the same backtest');
});

t.test('cancelling a running backtest stops it and it stays cancelled', async (t) => {
  const { body } = await api.call('POST', '/api/tasks/backtest', { body: { ...backtest, strategy: 'volume-breakout' } });
  await until('the backtest to run', async () => ((await task(api, body.task_id)).status === 'running' ? true : undefined));
  const cancelled = await api.call('DELETE', `/api/tasks/${body.task_id}`);
  t.equal(cancelled.status, 200);
  t.equal(cancelled.body.previous_status, 'running');
  await sleep(1500);
  const s = await task(api, body.task_id);
  t.equal(s.status, 'cancelled');
  t.equal(s.result, null, 'no result was recorded after the cancel');
});

t.test('a failing task ends failed with its error and can be requeued from the dead letters', async (t) => {
  const { body } = await api.call('POST', '/api/tasks/fetch-candles?max_retries=0', { body: { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D', daysBack: 2 } });
  const failed = await until('the task to fail', async () => {
    const s = await task(api, body.task_id);
    return s.status === 'failed' ? s : undefined;
  });
  t.match(failed.error, { message: String }, 'the error is reported');
  const dead = await api.call('GET', '/api/dead-letters?job=fetch-candles');
  t.ok(dead.body.dead_letters.some((r: { id: string }) => r.id === body.task_id));
  const requeued = await api.call('POST', `/api/dead-letters/${body.task_id}/requeue`);
  t.equal(requeued.status, 202);
  const again = await until('the requeued run to finish', async () => {
    const s = await task(api, requeued.body.task_id);
    return s.status === 'failed' ? s : undefined;
  });
  t.equal(again.retry_of, body.task_id);
});

t.test('a schedule created over HTTP is published by the running engine; pause, resume and trigger work', async (t) => {
  const status = await until('the engine heartbeat', async () => {
    const s = (await api.call('GET', '/api/scheduler/status')).body;
    return s.engines.length > 0 ? s : undefined;
  });
  t.match(status.engines[0], { state: /running|disabled/, last_heartbeat: String });

  const def = { name: 'every second', job: 'canary', every: '1s' };
  const preview = await api.call('POST', '/api/schedules/preview?count=30', { body: def });
  const created = await api.call('POST', '/api/schedules', { body: def });
  t.equal(created.status, 201);
  const id = created.body.id;
  const runsOf = async () => (await api.call('GET', `/api/runs?schedule=${id}&trigger=schedule&limit=500`)).body.runs as { state: string; scheduled_for: string }[];
  const published = await until('two published occurrences', async () => {
    const runs = await runsOf();
    return runs.filter((r) => r.state === 'completed').length >= 2 ? runs : undefined;
  });
  for (const r of published) t.ok(preview.body.occurrences.includes(r.scheduled_for), `occurrence ${r.scheduled_for} was in the preview`);

  const metrics = (await api.call('GET', '/metrics')).body as string;
  t.match(metrics, /wombat_engine_heartbeat_age_seconds\{engine="[^"]+",enabled="true"\} \d/);
  t.match(metrics, new RegExp(`wombat_schedule_publish_lag_seconds\\{schedule_id="${id}",schedule="every second"\\} -?\\d`));

  const paused = await api.call('POST', `/api/schedules/${id}/pause`, { body: { reason: 'testing' } });
  t.equal(paused.body.status, 'paused');
  await sleep(1200);
  const atPause = (await runsOf()).length;
  await sleep(2200);
  t.equal((await runsOf()).length, atPause, 'nothing is published while paused');

  await api.call('POST', `/api/schedules/${id}/resume`);
  await until('a publication after resume', async () => ((await runsOf()).length > atPause ? true : undefined));

  const triggered = await api.call('POST', '/api/scheduler/trigger', { body: { schedule_id: id } });
  t.equal(triggered.status, 202);
  const manual = await until('the manual run to complete', async () => {
    const r = (await api.call('GET', `/api/runs/${triggered.body.run_id}`)).body;
    return r.state === 'completed' ? r : undefined;
  });
  t.match(manual, { trigger: 'manual', schedule_id: id });
  await api.call('DELETE', `/api/schedules/${id}`);
});
