import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { createDatabase, freePort, ValidationError } from '@wombat/core/platform';
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
  // The fake shop listens on 127.0.0.1.
  allow_private: true,
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
      { name: 'json-api', format: 'json', url: `${s.url}/api/products`, items: 'data.products', name_field: 'title', price: 'price.amount', currency_field: 'price.currency', availability: 'available', allow_private: true },
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

t.test('loopback, private and link-local addresses are refused before connecting, on every hop; bodies never reach errors', async (t) => {
  const s = await shop(t);
  const port = new URL(s.url).port;
  s.setPage('/to-metadata', { status: 302, body: '', headers: { location: 'http://169.254.169.254/latest/meta-data/' } });
  s.setPage('/to-private', { status: 301, body: '', headers: { location: 'http://10.1.2.3/gpus' } });
  s.setPage('/to-v6', { status: 307, body: '', headers: { location: 'http://[::ffff:127.0.0.1]/gpus' } });
  // A name, not an address: refused once DNS answers, before any connection.
  s.setPage('/to-localhost', { status: 302, body: '', headers: { location: `http://localhost:${port}/gpus` } });
  s.setPage('/leak', { body: '<html>SECRET-TOKEN-0123456789abcdef internal admin page</html>', contentType: 'text/html; charset=utf-8' });
  const file = await sourcesFile(t, {
    hosts: { [s.host]: { requestsPerSecond: 50, concurrency: 4 } },
    sources: [
      html('not-allowed', [`${s.url}/gpus`], { allow_private: false }),
      html('metadata', [`${s.url}/to-metadata`]),
      html('private-range', [`${s.url}/to-private`]),
      html('mapped-v6', [`${s.url}/to-v6`]),
      html('via-dns', [`${s.url}/to-localhost`]),
      { name: 'leaky', format: 'json', url: `${s.url}/leak`, items: 'data', name_field: 'name', price: 'price', currency: 'USD', allow_private: true },
    ],
  });
  const r = await crawlPrices(options(file));
  const by = Object.fromEntries(r.sources.map((x) => [x.name, x]));
  t.match(by['not-allowed'], { status: 'failed', errors: [/127\.0\.0\.1:\d+ is a loopback address; .*allow_private/] }, 'a private source must say so');
  t.match(by.metadata, { status: 'failed', errors: [/169\.254\.169\.254 is a linkLocal address/] });
  t.match(by['private-range'], { status: 'failed', errors: [/10\.1\.2\.3 is a private address/] });
  t.match(by['mapped-v6'], { status: 'failed', errors: [/is a loopback address/] }, 'an IPv4-mapped IPv6 loopback is loopback');
  t.match(by['via-dns'], { status: 'failed', errors: [/localhost is a loopback address/] }, 'allow_private opens the source\'s own hosts, not where they redirect');
  t.equal(s.requests.filter((q) => q.path === '/gpus').length, 0, 'no refused hop reached the shop');
  t.match(by.leaky, { status: 'failed', errors: [/the page is not JSON \(content type text\/html, \d+ characters\)/] });
  t.notMatch(r.summary, /SECRET|internal admin/, 'nothing of a body is copied into the run\'s summary');
  t.notMatch(JSON.stringify(r.sources), /SECRET|internal admin/);
});

t.test('every item is checked before storing: an overflowing price or a NUL in a name spoils one item, not the crawl', async (t) => {
  const s = await shop(t);
  const tdb = await createTestDatabase<CrawlTables>(t);
  const products = [
    { title: 'GeForce RTX 5090', price: 1999 },
    { title: 'Overflow Card', price: 12345678901234568 },
    { title: 'Overflow Text', price: '$12,345,678,901,234,567' },
    { title: 'Nul\u0000Card', price: 499 },
    { title: 'Tab\tand\u0007bell', price: 299 },
    { title: 'x'.repeat(5000), price: 99 },
  ];
  s.setPage('/api/odd', { body: JSON.stringify({ products }), contentType: 'application/json' });
  const file = await sourcesFile(t, {
    hosts: { [s.host]: { requestsPerSecond: 50, concurrency: 4 } },
    sources: [
      { name: 'odd', format: 'json', url: `${s.url}/api/odd`, items: 'products', name_field: 'title', price: 'price', currency: 'USD', allow_private: true },
      html('eu', [`${s.url}/eu`]),
    ],
  });
  const r = await crawlPrices(options(file, { db: tdb.db }), { runId: '00000000-0000-4000-8000-0000000000c1' });
  t.equal(r.ok, true, 'the crawl is ok');
  t.match(r.sources[0], { name: 'odd', status: 'ok', found: 6, priced: 4, unreadable: 2 });
  const rows = await tdb.db.selectFrom('wombat.price_observations').selectAll().where('source', '=', 'odd').execute();
  const row = (product: string) => rows.find((x) => x.product === product);
  t.match(row('GeForce RTX 5090'), { status: 'priced', price: '1999.0000' });
  t.match(row('Overflow Card'), { status: 'unreadable', price: null, raw: /^1234567890123456\d$/, problem: /10\^15 or more/ });
  t.match(row('Overflow Text'), { status: 'unreadable', price: null, problem: /10\^15 or more/ });
  t.match(row('NulCard'), { status: 'priced', price: '499.0000' }, 'NUL is removed from text');
  t.match(row('Tab andbell'), { status: 'priced' }, 'control characters are removed, white space folded');
  const long = rows.find((x) => x.product.startsWith('xxx'))!;
  t.equal(long.product.length, 500, 'a name is bounded');
  t.equal(await countRows(tdb), 6 + 3, 'the other source is stored too');
});

t.test('a source that cannot be stored fails alone, and the crawl ends only when every lane has', async (t) => {
  const s = await shop(t);
  const tdb = await createTestDatabase<CrawlTables>(t);
  // A constraint the checks do not know stands for any database refusal.
  await tdb.sql`alter table wombat.price_observations add constraint no_poison check (product <> 'Arc A770')`;
  s.setPage('/slow-us', { body: (await (await fetch(`${s.url}/us`)).text()), delayMs: 400 });
  const file = await sourcesFile(t, {
    hosts: { [s.host]: { requestsPerSecond: 50, concurrency: 4 } },
    sources: [html('poisoned', [`${s.url}/eu`]), html('slow', [`${s.url}/slow-us`], { currency: 'USD' }), html('kr', [`${s.url}/gpus`])],
  });
  const r = await crawlPrices(options(file, { db: tdb.db, timeoutMs: 5000 }), { runId: '00000000-0000-4000-8000-0000000000c2' });
  const by = Object.fromEntries(r.sources.map((x) => [x.name, x]));
  t.match(by.poisoned, { status: 'failed', errors: [/storing 3 observation\(s\) failed \(SQLSTATE 23514\)/] });
  t.notMatch(by.poisoned.errors[0], /Arc A770|no_poison/, 'the driver\'s message stays in the journal');
  t.match(by.slow, { status: 'ok', found: 2 });
  t.match(by.kr, { status: 'ok', found: 5 });
  const counts = async () => Object.fromEntries((await tdb.sql<{ source: string; n: number }[]>`select source, count(*)::int as n from wombat.price_observations group by source`).map((x) => [x.source, x.n]));
  const atEnd = await counts();
  t.same(atEnd, { slow: 2, kr: 5 }, 'nothing of the failed source, everything of the others');
  const requests = s.requests.length;
  await new Promise((resolve) => setTimeout(resolve, 600));
  t.same(await counts(), atEnd, 'no row is written after the crawl has ended');
  t.equal(s.requests.length, requests, 'no request is sent after the crawl has ended');
});

t.test('an aborted crawl rejects only once every lane has stopped', async (t) => {
  const s = await shop(t);
  const tdb = await createTestDatabase<CrawlTables>(t);
  const eu = await (await fetch(`${s.url}/eu`)).text();
  s.setPage('/slow-a', { body: eu, delayMs: 2000 });
  s.setPage('/slow-b', { body: eu, delayMs: 2000 });
  const file = await sourcesFile(t, {
    hosts: { [s.host]: { requestsPerSecond: 50, concurrency: 4 } },
    sources: [html('slow-a', [`${s.url}/slow-a`, `${s.url}/gpus`]), html('slow-b', [`${s.url}/slow-b`]), html('later', [`${s.url}/us`], { currency: 'USD' })],
  });
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error('run cancelled')), 300);
  await t.rejects(crawlPrices(options(file, { db: tdb.db, timeoutMs: 5000, sourceConcurrency: 2 }), { runId: '00000000-0000-4000-8000-0000000000c3', signal: controller.signal }), /run cancelled/);
  const rows = await countRows(tdb);
  const requests = s.requests.length;
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.equal(await countRows(tdb), rows, 'no row is written after the crawl has ended');
  t.equal(s.requests.length, requests, 'no request is sent after the crawl has ended');
  t.notOk(s.requests.some((q) => q.path === '/us'), 'no source is started after the abort');
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
  t.same(budgets.map((b) => b.name), [`crawl:${s.host}`], 'the host budget lives in PostgreSQL');
});

t.test('one budget per host: different rates and Crawl-delay share it, robots.txt included', async (t) => {
  const s = await shop(t);
  const tdb = await createTestDatabase<CrawlTables>(t);
  s.setRobots({ body: 'User-agent: *\nCrawl-delay: 1\n', contentType: 'text/plain' });
  const urls = ['/gpus', '/eu', '/us'].map((p) => `${s.url}${p}`);
  const fast = await sourcesFile(t, { user_agent: 'FastCrawler/1', hosts: { [s.host]: { requestsPerSecond: 50, concurrency: 4 } }, sources: [html('a', urls)] });
  const slow = await sourcesFile(t, { user_agent: 'SlowCrawler/1', hosts: { [s.host]: { requestsPerSecond: 0.5, concurrency: 1 } }, sources: [html('b', urls)] });
  const [one, two] = await Promise.all([crawlPrices(options(fast, { db: tdb.db, timeoutMs: 5000 })), crawlPrices(options(slow, { db: tdb.db, timeoutMs: 5000 }))]);
  t.ok(one.ok && two.ok, 'both crawls complete');
  const budgets = await tdb.sql<{ name: string }[]>`select name from wombat.exchange_budgets where name like 'crawl:%'`;
  t.same(budgets.map((b) => b.name), [`crawl:${s.host}`], 'one budget for the host, not one per rate');
  const at = s.requests.map((q) => ({ at: q.at, slow: q.userAgent === 'SlowCrawler/1', robots: q.path === '/robots.txt' })).sort((a, b) => a.at - b.at);
  t.equal(at.length, 8, 'three pages and robots.txt, twice');
  // Crawl-delay: 1 holds pages a second apart, from robots.txt too; a lower bound, which load only lengthens.
  const gaps = at.slice(1).map((r, i) => ({ ...r, gap: r.at - at[i]!.at }));
  const firstPage = gaps.find((g) => !g.robots)!;
  t.ok(firstPage.gap >= 1000 || at.slice(0, at.indexOf(firstPage)).filter((r) => r.robots).length === 2, `the first page waits for the robots.txt request before it (${firstPage.gap} ms)`);
  const pages = at.filter((r) => !r.robots);
  const pageGaps = pages.slice(1).map((r, i) => r.at - pages[i]!.at);
  t.ok(Math.min(...pageGaps) >= 1000, `no two pages within a second, whichever process asked (shortest: ${Math.min(...pageGaps)} ms)`);
  // The slow one (one per 2 s) counts the fast one's requests too.
  const slowAt = at.filter((r) => r.slow && !r.robots);
  for (const r of slowAt) {
    const before = at.filter((x) => x.at < r.at && !x.robots && x !== r);
    const last = before.at(-1);
    if (last) t.ok(r.at - last.at >= 1000, `a slow page comes at least a second after the page before it, fast or slow (${r.at - last.at} ms)`);
  }
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
