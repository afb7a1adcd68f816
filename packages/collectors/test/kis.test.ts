import t from 'tap';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PermanentError } from '@wombat/core/platform';
import { createTestDatabase } from '@wombat/core/testing';
import { collectorsFor, fakeExchange, rows, tempDataRoot } from './helpers.ts';
import type { FakeExchange } from '@wombat/collectors/testing';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { kisKeyHash } from '../src/kis.ts';

const NOW = new Date('2026-06-03T08:00:00Z');
const now = () => NOW;
const kisOpts = (fake: FakeExchange, extra: Record<string, unknown> = {}) => ({
  baseUrl: fake.url,
  appKey: 'app-key-1',
  appSecret: 'secret-1',
  accountType: 'real' as const,
  masterUrls: fake.masterUrls,
  ...extra,
});

t.test('daily, weekly and monthly candles over years equal the exchange, paged 100 rows at a time', async (t) => {
  const fake = await fakeExchange(t, { now });
  const db = await createTestDatabase(t);
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now, db: db.db, kis: kisOpts(fake) });
  const from = new Date('2023-01-01T00:00:00Z');
  for (const tf of ['1D', '1W', '1M'] as const) {
    const r = await c.fetchCandles({ exchange: 'kis', symbol: '005930', timeframe: tf, from: from.toISOString() }, {});
    const truth = fake.kis.candles('005930', tf, from, NOW);
    t.equal(r.fetched, truth.length, `${tf}: ${truth.length} candles`);
    t.equal(r.requests, Math.ceil(truth.length / 100) + (truth.length % 100 === 0 ? 1 : 0), `${tf}: ${r.requests} pages`);
    const stored = await c.readCandles({ exchange: 'kis', symbol: '005930', timeframe: tf, from, to: NOW });
    t.same(rows(stored), rows(truth), `${tf}: stored equals the exchange`);
  }
  const last = await c.readCandles({ exchange: 'kis', symbol: '005930', timeframe: '1D', from: new Date('2026-06-01T00:00:00Z'), to: NOW });
  t.same(last.map((x) => x.time.toISOString()), ['2026-06-01T00:00:00.000Z', '2026-06-02T00:00:00.000Z'], 'today, still trading, is not stored');
  t.equal(fake.kis.tokensIssued, 1, 'one token for every call');
});

t.test('collectors share one token, keep it in Postgres, and replace it once when it expires', async (t) => {
  const fake = await fakeExchange(t, { now, kis: { tokenIntervalMs: 0 } });
  const db = await createTestDatabase(t);
  const dataRoot = await tempDataRoot(t);
  const a = collectorsFor(t, fake, { dataRoot, now, db: db.db, kis: kisOpts(fake) });
  const b = collectorsFor(t, fake, { dataRoot, now, db: db.db, kis: kisOpts(fake) });
  await Promise.all([
    a.fetchCandles({ exchange: 'kis', symbol: '000660', timeframe: '1D', daysBack: 10 }, {}),
    b.fetchCandles({ exchange: 'kis', symbol: '035720', timeframe: '1D', daysBack: 10 }, {}),
  ]);
  t.equal(fake.kis.tokensIssued, 1, 'two collectors, one token');
  const [row] = await db.sql<{ token: string }[]>`select token from wombat.kis_tokens`;
  fake.kis.expireTokens();
  const r = await b.fetchCandles({ exchange: 'kis', symbol: '000660', timeframe: '1D', daysBack: 20, overwrite: true }, {});
  t.ok(r.fetched > 0);
  t.equal(fake.kis.tokensIssued, 2, 'an expired token is replaced once');
  const [after] = await db.sql<{ token: string }[]>`select token from wombat.kis_tokens`;
  t.not(after!.token, row!.token, 'the new token is shared in Postgres');
  await a.fetchCandles({ exchange: 'kis', symbol: '035720', timeframe: '1D', daysBack: 20, overwrite: true }, {});
  t.equal(fake.kis.tokensIssued, 2, 'the other collector picks up the new token');
});

t.test('EGW00201 (too many requests) is retried after a pause and the result is complete', async (t) => {
  const fake = await fakeExchange(t, { now, kis: { requestsPerSecond: 3 } });
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now, kis: kisOpts(fake, { requestsPerSecond: 50 }) });
  const from = new Date('2024-06-01T00:00:00Z');
  const r = await c.fetchCandles({ exchange: 'kis', symbol: '247540', timeframe: '1D', from: from.toISOString() }, {});
  t.ok((fake.requests.kis.byStatus[500] ?? 0) > 0, 'the exchange did refuse some calls');
  t.equal(r.fetched, fake.kis.candles('247540', '1D', from, NOW).length);
});

t.test('unknown symbols, intraday timeframes and bad credentials fail permanently', async (t) => {
  const fake = await fakeExchange(t, { now, kis: { credentials: { appKey: 'app-key-1', appSecret: 'secret-1' } } });
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now, kis: kisOpts(fake) });
  await t.rejects(c.fetchCandles({ exchange: 'kis', symbol: '999999', timeframe: '1D', daysBack: 5 }, {}), PermanentError);
  await t.rejects(c.fetchCandles({ exchange: 'kis', symbol: '005930', timeframe: '1H', daysBack: 5 }, {}), PermanentError);
  const bad = collectorsFor(t, fake, { dataRoot, now, kis: kisOpts(fake, { appSecret: 'wrong' }) });
  const err = await bad.fetchCandles({ exchange: 'kis', symbol: '005930', timeframe: '1D', daysBack: 5 }, {}).catch((e: unknown) => e);
  t.type(err, PermanentError);
  t.match((err as Error).message, /check KIS_APP_KEY and KIS_APP_SECRET/);
});

t.test('symbol collection adds, renames and delists, and listSymbols serves the active ones', async (t) => {
  const fake = await fakeExchange(t, { now });
  const db = await createTestDatabase(t);
  const dataRoot = await tempDataRoot(t);
  // The fake builds its cp949 table on the first master download: seconds on a busy machine.
  const c = collectorsFor(t, fake, { dataRoot, now, db: db.db, kis: kisOpts(fake), requestTimeoutMs: 30_000 });
  const first = await c.collectSymbols({});
  t.same(first.map((r) => [r.exchange, r.total, r.added]), [['upbit', 5, 5], ['kis', 5, 5]]);
  const names = await db.sql<{ name: string }[]>`select name from wombat.symbols where symbol = '247540'`;
  t.equal(names[0]!.name, '에코프로비엠', 'cp949 names are decoded');
  t.same(await c.listSymbols('kis', { market: 'KOSDAQ' }), ['091990', '247540']);
  fake.kis.symbols.splice(fake.kis.symbols.findIndex((s) => s.symbol === '091990'), 1);
  fake.kis.symbols[0]!.name = '삼성전자우';
  fake.kis.symbols.push({ ...fake.kis.symbols[1]!, symbol: '373220', name: 'LG에너지솔루션' });
  fake.upbit.markets[1]!.koreanName = '이더';
  const second = await c.collectSymbols({ exchanges: ['kis', 'upbit'] });
  t.same(second, [
    { exchange: 'kis', total: 5, added: 1, renamed: 1, delisted: 1 },
    { exchange: 'upbit', total: 5, added: 0, renamed: 1, delisted: 0 },
  ]);
  t.same(await c.listSymbols('kis', { market: 'KOSDAQ' }), ['247540'], 'the delisted symbol is no longer listed');
  const gone = await db.sql<{ active: boolean }[]>`select active from wombat.symbols where symbol = '091990'`;
  t.equal(gone[0]!.active, false, 'delisted rows are kept, inactive');
});

t.test('master files are read from local paths too, and without a database listSymbols uses them', async (t) => {
  const fake = await fakeExchange(t, { now });
  const dataRoot = await tempDataRoot(t);
  const kospi = path.join(dataRoot, 'kospi_code.mst.zip');
  const kosdaq = path.join(dataRoot, 'kosdaq_code.mst.zip');
  await writeFile(kospi, fake.kis.masterZip('KOSPI'));
  await writeFile(kosdaq, fake.kis.masterZip('KOSDAQ'));
  const c = collectorsFor(t, fake, { dataRoot, now, kis: kisOpts(fake, { masterUrls: { kospi, kosdaq } }) });
  t.same(await c.listSymbols('kis', { market: 'KOSPI' }), ['000660', '005930', '035720']);
  t.equal(fake.requests.kis.total, 0, 'nothing was downloaded');
});

t.test('a mock account keeps to 1 request/s and is never refused', async (t) => {
  const fake = await fakeExchange(t, { now, kis: { accountType: 'mock' } });
  const dataRoot = await tempDataRoot(t);
  const c = collectorsFor(t, fake, { dataRoot, now, kis: kisOpts(fake, { accountType: 'mock' }) });
  const r = await c.fetchCandles({ exchange: 'kis', symbol: '005930', timeframe: '1D', daysBack: 250 }, {});
  t.equal(r.requests, 2);
  t.same(fake.requests.kis.byStatus, { 200: 3 }, 'token and both pages answered 200');
});

t.test('a token issue waiting out EGW00133 holds no transaction and no pooled connection', async (t) => {
  const fake = await fakeExchange(t, { now, kis: { tokenIntervalMs: 2500 } });
  // One connection in the pool: a token issue holding it would block every other query.
  const db = await createTestDatabase(t, { poolSize: 1 });
  const dataRoot = await tempDataRoot(t);
  const appKey = 'app-key-egw';
  // Someone else just had a token issued for this key: KIS refuses another for a while (EGW00133).
  const pre = await fetch(`${fake.url}/oauth2/tokenP`, { method: 'POST', body: JSON.stringify({ grant_type: 'client_credentials', appkey: appKey, appsecret: 's' }) });
  t.equal(pre.status, 200);
  await pre.text();
  const c = collectorsFor(t, fake, { dataRoot, now, db: db.db, kis: kisOpts(fake, { appKey, appSecret: 's', tokenRetryDelayMs: 1500 }) });
  const collecting = c.fetchCandles({ exchange: 'kis', symbol: '005930', timeframe: '1D', daysBack: 10 }, {});
  const deadline = Date.now() + 60_000;
  while (fake.kis.refused.EGW00133 === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(fake.kis.refused.EGW00133, 1, 'the first attempt was refused');
  // While the issuer waits to retry: the single pooled connection is free and nothing is left in a transaction.
  const [one] = await db.sql<{ n: number }[]>`select 1 as n`;
  t.equal(one!.n, 1, 'the pool answers while the token is being issued');
  const idle = await db.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'`;
  t.equal(idle[0]!.n, 0, 'no session idles in a transaction');
  const r = await collecting;
  t.ok(r.fetched > 0);
  t.equal(fake.kis.tokensIssued, 2, 'issued once the interval had passed');
  const [row] = await db.sql<{ token: string; issuing_until: Date | null }[]>`select token, issuing_until from wombat.kis_tokens`;
  t.match(row, { token: /^fake-token-2-/, issuing_until: null }, 'the token is stored and the claim released');
});

t.test('a token another process stores between our read and our claim is used, not issued again', async (t) => {
  const fake = await fakeExchange(t, { now, kis: { tokenIntervalMs: 60_000 } });
  const db = await createTestDatabase(t);
  const dataRoot = await tempDataRoot(t);
  const appKey = 'app-key-race';
  // The other process's token, issued by KIS a moment ago: a second issue within the minute would be refused (EGW00133).
  const res = await fetch(`${fake.url}/oauth2/tokenP`, { method: 'POST', body: JSON.stringify({ grant_type: 'client_credentials', appkey: appKey, appsecret: 's' }) });
  const other = (await res.json()) as { access_token: string };
  t.equal(fake.kis.tokensIssued, 1);
  // Our read of the token row finds nothing; the other process stores its token right after, before our claim.
  const reads = new Set<unknown>();
  let stored = false;
  const storeAfterFirstRead: KyselyPlugin = {
    transformQuery({ node, queryId }: PluginTransformQueryArgs): RootOperationNode {
      if (node.kind === 'SelectQueryNode' && JSON.stringify(node.from).includes('kis_tokens')) reads.add(queryId.queryId);
      return node;
    },
    async transformResult({ result, queryId }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      if (reads.has(queryId.queryId) && !stored) {
        stored = true;
        t.same(result.rows, [], 'our read found no token');
        await db.sql`insert into wombat.kis_tokens (key_hash, token, issued_at, expires_at)
                     values (${kisKeyHash(fake.url, appKey, 's')}, ${other.access_token}, now(), now() + interval '1 day')`;
      }
      return result;
    },
  };
  const c = collectorsFor(t, fake, { dataRoot, now, db: db.db.withPlugin(storeAfterFirstRead), kis: kisOpts(fake, { appKey, appSecret: 's' }) });
  const r = await c.fetchCandles({ exchange: 'kis', symbol: '005930', timeframe: '1D', daysBack: 10 }, {});
  t.ok(stored, 'the other process stored its token between our read and our claim');
  t.ok(r.fetched > 0);
  t.equal(fake.kis.refused.EGW00133, 0, 'no token refused');
  t.equal(fake.kis.tokensIssued, 1, 'the stored token was used: none issued');
  const [row] = await db.sql<{ token: string; issuing_until: Date | null }[]>`select token, issuing_until from wombat.kis_tokens`;
  t.match(row, { token: other.access_token, issuing_until: null });
});
