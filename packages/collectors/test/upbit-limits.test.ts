import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { AppError, PermanentError } from '@wombat/core/platform';
import { collectorsFor, fakeExchange, rows, tempDataRoot } from './helpers.ts';

const NOW = new Date('2026-06-01T12:00:00Z');
const now = () => NOW;

t.test('two collections sharing the 10 requests/s budget get no 429', async (t) => {
  const fake = await fakeExchange(t, { now });
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now });
  const [a, b] = await Promise.all([
    c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1m', daysBack: 1 }, {}),
    c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-ETH', timeframe: '1m', daysBack: 1 }, {}),
  ]);
  t.equal(a.fetched + b.fetched, 2 * 1440);
  t.equal(fake.requests.upbit.total, a.requests + b.requests);
  t.same(fake.requests.upbit.byStatus, { 200: a.requests + b.requests }, 'every request answered 200');
});

t.test('injected 429, 500, timeouts and malformed bodies are retried and the result is complete', async (t) => {
  const fake = await fakeExchange(t, { now });
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now, requestTimeoutMs: 300 });
  fake.upbit.inject('429');
  fake.upbit.inject('500', 2);
  fake.upbit.inject('timeout');
  fake.upbit.inject('malformed');
  const r = await c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-GAP', timeframe: '5m', daysBack: 2 }, {});
  const truth = fake.upbit.candles('KRW-GAP', '5m', new Date(NOW.getTime() - 2 * 86_400_000), NOW);
  t.equal(r.fetched, truth.length);
  const stored = await c.readCandles({ exchange: 'upbit', symbol: 'KRW-GAP', timeframe: '5m', from: new Date(0), to: NOW });
  t.same(rows(stored), rows(truth));
  t.equal(fake.requests.upbit.byStatus[429], 1);
  t.equal(fake.requests.upbit.byStatus[500], 2);
});

t.test('a 418 ban fails the collection permanently and stops further calls', async (t) => {
  const fake = await fakeExchange(t, { now });
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now });
  fake.upbit.inject('418');
  const err = await c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H', daysBack: 2 }, {}).catch((e: unknown) => e);
  t.type(err, PermanentError);
  t.match((err as Error).message, /banned this IP \(HTTP 418\)/);
  const calls = fake.requests.upbit.total;
  await t.rejects(c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-ETH', timeframe: '1H', daysBack: 2 }, {}), PermanentError);
  t.equal(fake.requests.upbit.total, calls, 'no request is sent while banned');
  t.notOk(existsSync(path.join(dataRoot, 'upbit')), 'nothing written');
});

t.test('persistent 5xx fails clearly after the retries and writes nothing', async (t) => {
  const fake = await fakeExchange(t, { now });
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now, retries: 2 });
  // The first page succeeds; every later one fails: nothing partial may be stored.
  const first = fake.requests.upbit.total;
  fake.upbit.inject('500', 0);
  const p = c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1m', daysBack: 2 }, {
    onProgress: () => {
      if (fake.requests.upbit.total === first + 1) fake.upbit.inject('500', 10);
    },
  });
  const err = await p.catch((e: unknown) => e);
  t.type(err, AppError);
  t.equal((err as AppError).code, 'exchange_unavailable');
  t.match((err as Error).message, /after 3 attempts: .*answered 500/);
  t.notOk(existsSync(path.join(dataRoot, 'upbit')), 'no file was written');
});

t.test('aborting the signal cancels the request in flight and writes nothing', async (t) => {
  const fake = await fakeExchange(t, { now });
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now, requestTimeoutMs: 30_000 });
  fake.upbit.inject('timeout');
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error('job cancelled')), 100);
  await t.rejects(c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H', daysBack: 2 }, { signal: ac.signal }), { message: 'job cancelled' });
  t.notOk(existsSync(path.join(dataRoot, 'upbit')));
});

t.test('the fake exchange answers 429 past the limit and bans with 418 when abused', async (t) => {
  const fake = await fakeExchange(t, { now, upbit: { requestsPerSecond: 5, banAfter429s: 3 } });
  const statuses: number[] = [];
  for (let i = 0; i < 10; i++) {
    const res = await fetch(`${fake.url}/v1/candles/minutes/1?market=KRW-BTC&count=1`);
    statuses.push(res.status);
    if (res.status === 200) t.match(res.headers.get('remaining-req'), /^group=candles; min=600; sec=\d$/);
    await res.text();
  }
  t.same(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 418, 418]);
  t.ok(fake.upbit.banned);
});
