import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCollectors } from '@wombat/collectors';
import { startFakeExchange } from '@wombat/collectors/testing';
import { nextOccurrences } from '@wombat/core/schedules';
import { publishRun } from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';
import { finished, startTestWorker, waitForRun } from './fixtures/harness.ts';

t.test('the built-in 00:02 KST collect-prices stores the KRX day that closed the evening before', async (t) => {
  // The built-in schedule: times 00:02 in Asia/Seoul. Its occurrence after Monday 2026-11-30 18:00 KST.
  const [occurrence] = nextOccurrences({ trigger: { kind: 'times', times: ['00:02'] }, timezone: 'Asia/Seoul' }, new Date('2026-11-30T09:00:00Z'), 1);
  t.equal(occurrence!.toISOString(), '2026-11-30T15:02:00.000Z', 'Tuesday 00:02 KST');
  const now = () => occurrence!;
  const tdb = await createTestDatabase(t);
  const exchange = await startFakeExchange({ now });
  t.teardown(() => exchange.close());
  const dataRoot = await mkdtemp(path.join(tmpdir(), 'wombat-worker-'));
  t.teardown(() => rm(dataRoot, { recursive: true, force: true }));
  const collectors = createCollectors({
    db: tdb.db,
    dataRoot,
    storage: 'parquet',
    upbit: { baseUrl: exchange.url },
    kis: { baseUrl: exchange.url, appKey: 'app-key-1', appSecret: 'secret-1', accountType: 'real', masterUrls: exchange.masterUrls },
    log: tdb.log,
    now,
    requestTimeoutMs: 30_000,
  });
  t.teardown(() => collectors.close());
  const { boss } = await startTestWorker(t, tdb, { queues: ['collect-prices', 'fetch-candles'], collectors });

  const id = await publishRun(tdb.db, boss, { job: 'collect-prices', params: {}, trigger: 'manual' });
  const parent = await waitForRun(tdb, id, finished);
  t.equal(parent.state, 'completed', parent.error ? JSON.stringify(parent.error) : 'completed');
  const deadline = Date.now() + 30_000;
  let children = await tdb.db.selectFrom('wombat.runs').selectAll().where('parent_id', '=', id).execute();
  while ((children.length === 0 || children.some((c) => !finished(c))) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    children = await tdb.db.selectFrom('wombat.runs').selectAll().where('parent_id', '=', id).execute();
  }
  t.same(children.map((c) => c.state), children.map(() => 'completed'), `${children.length} fetch-candles runs completed`);

  const lastDay = async (exchangeName: 'kis' | 'upbit', symbol: string) => {
    const stored = await collectors.readCandles({ exchange: exchangeName, symbol, timeframe: '1D', from: new Date('2026-01-01T00:00:00Z'), to: new Date('2027-01-01T00:00:00Z') });
    return stored.at(-1)?.time.toISOString().slice(0, 10);
  };
  for (const s of exchange.kis.symbols) t.equal(await lastDay('kis', s.symbol), '2026-11-30', `KIS ${s.symbol}: Monday's session is stored`);
  t.equal(await lastDay('upbit', 'KRW-BTC'), '2026-11-29', "Upbit KRW-BTC: the UTC day of 11-30 is still open");
});
