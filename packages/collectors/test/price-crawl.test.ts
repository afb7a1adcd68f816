import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { createDatabase, freePort, ValidationError } from '@wombat/core';
import { createTestDatabase, testLogger } from '@wombat/core/testing';
import { crawlPrices, latestPrices, type CrawlTables, type PriceCrawlOptions } from '@wombat/collectors';
import { startFakeShop, type FakeShop } from '@wombat/collectors/testing';

interface Teardown {
  teardown(fn: () => unknown): void;
}

const UA = 'WombatCrawler/0.1 (+mailto:ops@example.com)';

async function shop(t: Teardown): Promise<FakeShop> {
  const s = await startFakeShop();
  t.teardown(() => s.close());
  return s;
}

async function sourcesFile(t: Teardown, doc: object, ext = 'yaml'): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-crawl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, `sources.${ext}`);
  await writeFile(file, ext === 'json' ? JSON.stringify(doc) : stringify(doc));
  return file;
}

const html = (name: string, urls: string[], extra: object = {}) => ({
  name,
  urls,
  items: 'li.product',
  name_field: 'a.title',
  price: '.price',
  availability: '.stock',
  link: 'a.title@href',
  ...extra,
});

function options(file: string, extra: Partial<PriceCrawlOptions> = {}): PriceCrawlOptions {
  return { sourcesFile: file, userAgent: UA, timeoutMs: 800, retries: 2, retryBaseDelayMs: 10, log: testLogger('crawl'), ...extra };
}

t.test('crawls HTML and JSON sources; a source that no longer matches fails loudly while the others are stored', async (t) => {
  const s = await shop(t);
  const tdb = await createTestDatabase<CrawlTables>(t);
  const file = await sourcesFile(t, {
    hosts: { [s.host]: { requestsPerSecond: 50, concurrency: 4 } },
    sources: [
      html('kr-gpus', [`${s.url}/gpus`, `${s.url}/gpus?page=2`]),
      html('eu-gpus', [`${s.url}/eu`]),
      html('us-gpus', [`${s.url}/us`], { currency: 'USD' }),
      { name: 'json-api', format: 'json', url: `${s.url}/api/products`, items: 'data.products', name_field: 'title', price: 'price.amount', currency_field: 'price.currency', availability: 'available' },
      html('redesigned', [`${s.url}/broken`]),
      html('euc-kr', [`${s.url}/euc-kr`]),
    ],
  });
  const progress: number[] = [];
  const r = await crawlPrices(options(file, { db: tdb.db }), { runId: '00000000-0000-4000-8000-000000000001', onProgress: (f) => progress.push(f) });
  const by = Object.fromEntries(r.sources.map((x) => [x.name, x]));
  t.equal(r.ok, false, 'the run is not ok: one source failed');
  t.match(r.summary, /6 source\(s\): 5 ok, 1 failed/);
  t.match(r.summary, /redesigned: .*items selector "li.product" matched nothing.*no longer matches/);
  t.match(by['kr-gpus'], { status: 'ok', pages: 2, found: 7, priced: 5, soldOut: 1, unreadable: 1, failed: 0 });
  t.match(by['eu-gpus'], { status: 'ok', found: 3, priced: 3, unreadable: 0 });
  t.match(by['us-gpus'], { status: 'ok', found: 2, priced: 1, unreadable: 1 });
  t.match(by['json-api'], { status: 'ok', found: 3, priced: 2, unreadable: 1 });
  t.match(by.redesigned, { status: 'failed', found: 0, failed: 1 });
  t.match(by['euc-kr'], { status: 'ok', priced: 1 });
  t.equal(progress.at(-1), 1, 'progress ends at 1');

  const rows = await tdb.db.selectFrom('wombat.price_observations').selectAll().orderBy('id').execute();
  t.equal(rows.length, 7 + 3 + 2 + 3 + 1, 'one row per item of every source that answered');
  const row = (source: string, product: string) => rows.find((x) => x.source === source && x.product === product)!;
  t.match(row('kr-gpus', '지포스 RTX 4090'), { status: 'priced', price: '2890000.0000', currency: 'KRW', in_stock: true, raw: '₩2,890,000', url: `${s.url}/p/4090` });
  t.match(row('kr-gpus', '라데온 RX 7900 XTX'), { status: 'sold_out', price: null, in_stock: false, raw: '품절' });
  t.match(row('kr-gpus', '지포스 RTX 4070 🎮'), { status: 'unreadable', price: null, raw: '가격 문의', problem: /no number/ });
  t.match(row('eu-gpus', 'GeForce RTX 4090'), { price: '1949.0000', currency: 'EUR', in_stock: true });
  t.match(row('eu-gpus', 'Radeon RX 7900 XTX'), { price: '999.9000', currency: 'EUR', in_stock: false });
  t.match(row('us-gpus', 'Radeon RX 7900 XTX'), { status: 'unreadable', raw: 'was $999 now $899', problem: /several numbers/ });
  t.match(row('json-api', 'GeForce RTX 4090 Founders'), { price: '1599.0000', currency: 'USD', in_stock: true });
  t.match(row('json-api', 'GeForce RTX 4080'), { price: '1199.0000', currency: 'USD', in_stock: false });
  t.match(row('json-api', 'Radeon RX 7800 XT'), { status: 'unreadable', problem: /no price/ });
  t.match(row('euc-kr', '지포스 RTX 4070 Ti'), { price: '1099000.0000', currency: 'KRW' }, 'an EUC-KR page is decoded by its charset');
  t.ok(rows.every((x) => x.run_id === '00000000-0000-4000-8000-000000000001'));
  t.ok(s.requests.every((q) => q.userAgent === UA), 'every request says who we are');
  t.equal(s.requests.filter((q) => q.path === '/robots.txt').length, 1, 'robots.txt is read once per host');

  // Same run again (a retry): rows are replaced, not doubled.
  await crawlPrices(options(file, { db: tdb.db }), { runId: '00000000-0000-4000-8000-000000000001', sources: ['eu-gpus'] });
  t.equal(await countRows(tdb), rows.length, 'a retried run rewrites its own rows');
});

t.test('the latest-price view shows each product\'s newest price and the change since the one before', async (t) => {
  const s = await shop(t);
  const tdb = await createTestDatabase<CrawlTables>(t);
  const file = await sourcesFile(t, { hosts: { [s.host]: { requestsPerSecond: 50 } }, sources: [html('kr', [`${s.url}/gpus?page=2`])] }, 'json');
  await crawlPrices(options(file, { db: tdb.db, now: () => new Date('2026-06-01T00:00:00Z') }), { runId: '00000000-0000-4000-8000-00000000000a' });
  s.setPage('/gpus?page=2', { body: '<ul><li class="product"><a class="title">지포스 RTX 4060</a><span class="price">₩399,000</span></li><li class="product"><a class="title">라데온 RX 7600</a><span class="price">품절</span></li></ul>' });
  await crawlPrices(options(file, { db: tdb.db, now: () => new Date('2026-06-02T00:00:00Z') }), { runId: '00000000-0000-4000-8000-00000000000b' });
  const latest = await latestPrices(tdb.db);
  const gpu = latest.find((l) => l.product === '지포스 RTX 4060')!;
  t.match(gpu, { price: '399000.0000', previous_price: '419000.0000', change: '-20000.0000', currency: 'KRW' });
  t.equal(Number(gpu.change_ratio), -0.047733);
  t.equal(gpu.observed_at.toISOString(), '2026-06-02T00:00:00.000Z');
  const soldOut = latest.find((l) => l.product === '라데온 RX 7600')!;
  t.match(soldOut, { price: '339000.0000', previous_price: null }, 'a sold-out observation has no price: the last readable one stays the latest');
});

t.test('network faults, 5xx, 429 and timeouts are retried; 404, endless redirects and dead pages fail their source only', async (t) => {
  const s = await shop(t);
  const file = await sourcesFile(t, {
    hosts: { [s.host]: { requestsPerSecond: 50, concurrency: 4 } },
    sources: [
      html('flaky', [`${s.url}/gpus`]),
      html('moved', [`${s.url}/moved`]),
      html('gone', [`${s.url}/gone`]),
      html('loop', [`${s.url}/loop-a`]),
      html('dead', [`${s.url}/always-500`]),
      html('slow', [`${s.url}/slow`]),
    ],
  });
  s.inject('/gpus', '500');
  s.inject('/gpus', 'reset');
  s.inject('/gpus', '429');
  const r = await crawlPrices(options(file, { retries: 3, timeoutMs: 500 }));
  const by = Object.fromEntries(r.sources.map((x) => [x.name, x]));
  t.match(by.flaky, { status: 'ok', found: 5 }, 'a 500, a reset connection and a 429 are retried');
  t.equal(s.requests.filter((q) => q.path === '/gpus').length, 4);
  t.match(by.moved, { status: 'ok', found: 2 }, 'a redirect is followed');
  t.match(by.gone, { status: 'failed', errors: [/answered 404/] });
  t.equal(s.requests.filter((q) => q.path === '/gone').length, 1, 'a 404 is not retried');
  t.match(by.loop, { status: 'failed', errors: [/redirected more than 5 times/] });
  t.match(by.dead, { status: 'failed', errors: [/failed after 4 attempts: .*answered 500/] });
  t.match(by.slow, { status: 'failed', errors: [/no answer within 500 ms/] }, 'a page slower than the deadline fails after its retries');
  t.equal(s.requests.filter((q) => q.path === '/slow').length, 4);
  t.equal(r.ok, false);
});

t.test('robots.txt is respected unless a source says otherwise; an unreadable robots.txt disallows the host', async (t) => {
  const s = await shop(t);
  const file = await sourcesFile(t, {
    hosts: { [s.host]: { requestsPerSecond: 50 } },
    sources: [html('private', [`${s.url}/private/deals`]), html('private-allowed', [`${s.url}/private/deals`], { ignore_robots: true })],
  });
  const first = await crawlPrices(options(file));
  const by = Object.fromEntries(first.sources.map((x) => [x.name, x]));
  t.match(by.private, { status: 'failed', errors: [/robots.txt of .* disallows \/private\/deals/] });
  t.match(by['private-allowed'], { status: 'ok', found: 1 });
  t.equal(s.requests.filter((q) => q.path === '/private/deals').length, 1, 'the disallowed page was fetched only for the source that opted out');

  s.setRobots({ status: 503, body: 'down' });
  const down = await crawlPrices(options(file, { retries: 1 }), { sources: ['private'] });
  t.match(down.sources[0], { status: 'failed', errors: [/robots.txt of .* answered 503, which counts as disallowing every page until it can be read/] });
  s.setRobots(undefined);
  const none = await crawlPrices(options(file), { sources: ['private'] });
  t.match(none.sources[0], { status: 'ok' }, 'no robots.txt (404) allows everything');
});

t.test('a shop that does not answer is reported as such, not as a robots.txt that disallows', async (t) => {
  const port = await freePort();
  const file = await sourcesFile(t, { sources: [html('gone', [`http://127.0.0.1:${port}/deals`])] });
  const result = await crawlPrices(options(file, { retries: 1 }));
  t.match(result.sources[0], { status: 'failed', errors: [new RegExp(`127.0.0.1:${port} does not answer \\(connect ECONNREFUSED 127.0.0.1:${port}\\); check the source's URL`)] });
  t.notMatch(result.sources[0]!.errors.join(' '), /robots|ignore_robots/);
});

t.test('per-host politeness: concurrency and spacing hold across sources', async (t) => {
  const s = await shop(t);
  const urls = ['/gpus', '/gpus?page=2', '/eu', '/us', '/euc-kr', '/moved'].map((p) => `${s.url}${p}`);
  const file = await sourcesFile(t, {
    hosts: { [s.host]: { requestsPerSecond: 2, concurrency: 1 } },
    sources: [html('a', urls.slice(0, 3)), html('b', urls.slice(3))],
  });
  const r = await crawlPrices(options(file, { timeoutMs: 5000 }));
  t.equal(r.sources.filter((x) => x.status === 'ok').length, 2);
  t.equal(s.maxInFlight(), 1, 'never two requests at once to one host');
  const at = s.requests.map((q) => q.at);
  t.equal(at.length, 8, 'six pages, one redirect and robots.txt');
  // 2 per second: any third request arrives at least a second after the first of the three.
  // A lower bound only, which load can only lengthen.
  const spans = at.slice(2).map((v, i) => v - at[i]!);
  t.ok(Math.min(...spans) >= 1000, `no more than 2 requests in any second (shortest span of three: ${Math.min(...spans)} ms)`);
});

t.test('per-host politeness holds across processes crawling one shop with the same database', async (t) => {
  const s = await shop(t);
  const tdb = await createTestDatabase<CrawlTables>(t);
  // A second pool on the same database: its crawls get a limiter of their own (one per database handle),
  // so they share nothing in memory with the first's, as in another process; only the budget row in PostgreSQL.
  const other = createDatabase<CrawlTables>({ url: tdb.url, poolSize: 2, applicationName: 'wombat-test' });
  t.teardown(() => other.close());
  const urls = ['/gpus', '/gpus?page=2', '/eu', '/us'].map((p) => `${s.url}${p}`);
  const file = await sourcesFile(t, { hosts: { [s.host]: { requestsPerSecond: 2, concurrency: 1 } }, sources: [html('a', urls)] });
  const [one, two] = await Promise.all([crawlPrices(options(file, { db: tdb.db, timeoutMs: 5000 })), crawlPrices(options(file, { db: other.db, timeoutMs: 5000 }))]);
  t.ok(one.ok && two.ok, 'both crawls complete');
  const at = s.requests.map((q) => q.at).sort((a, b) => a - b);
  t.equal(at.length, 10, 'four pages and robots.txt, twice');
  // 2 per second between the two: any third request arrives at least a second after the first of the three.
  const spans = at.slice(2).map((v, i) => v - at[i]!);
  t.ok(Math.min(...spans) >= 1000, `no more than 2 requests in any second from both (shortest span of three: ${Math.min(...spans)} ms)`);
  const budgets = await tdb.sql<{ name: string }[]>`select name from wombat.exchange_budgets where name like 'crawl:%'`;
  t.same(budgets.map((b) => b.name), [`crawl:${s.host}:2/1000`], 'the host budget lives in PostgreSQL');
});

t.test('unknown source names and a bad file are clear errors', async (t) => {
  const file = await sourcesFile(t, { sources: [html('a', ['http://127.0.0.1:9/x'])] });
  await t.rejects(crawlPrices(options(file), { sources: ['a', 'nope'] }), ValidationError);
  await t.rejects(crawlPrices(options(file), { sources: ['nope'] }), /unknown source nope; sources in .*: a/);
  await t.rejects(crawlPrices(options(path.join(tmpdir(), 'no-such-sources.yaml'))), /PRICE_CRAWL_SOURCES: cannot read .*ENOENT/);
});

async function countRows(tdb: { db: import('kysely').Kysely<CrawlTables> }): Promise<number> {
  const r = await tdb.db.selectFrom('wombat.price_observations').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(r.n);
}
