import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { crawlFields, createCrawls, type CrawlTables } from '@wombat/collectors';
import { makePosts, startFakeReddit, startFakeShop } from '@wombat/collectors/testing';
import { ConfigError, loadConfig as loadFields } from '@wombat/core/platform';
import { publishRun } from '@wombat/core/runs';
import { createTestDatabase, type TestDatabase } from '@wombat/core/testing';
import { loadConfig } from '@wombat/worker';
import { finished, startTestWorker, waitForRun } from './fixtures/harness.ts';

interface Teardown {
  teardown(fn: () => unknown): void;
}

async function tempFile(t: Teardown, name: string, text: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-worker-crawl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

const source = (name: string, url: string) => ({ name, url, items: 'li.product', name_field: 'a.title', price: '.price', availability: '.stock', allow_private: true });

async function setup(t: Teardown, env: Record<string, string>) {
  const tdb: TestDatabase = await createTestDatabase(t);
  const crawls = createCrawls(loadFields(crawlFields, { PRICE_CRAWL_RETRIES: '1', ...env }), { log: tdb.log, db: tdb.db });
  const { boss } = await startTestWorker(t, tdb, { queues: ['crawl-prices', 'collect-posts'], crawls });
  const crawlDb = tdb.db as unknown as import('kysely').Kysely<CrawlTables>;
  return { tdb, boss, crawlDb };
}

t.test('crawl-prices runs every source, stores observations under the run and reports counts per source', async (t) => {
  const shop = await startFakeShop();
  t.teardown(() => shop.close());
  const file = await tempFile(t, 'sources.json', JSON.stringify({ defaults: { requestsPerSecond: 20 }, sources: [source('kr', `${shop.url}/gpus`), source('eu', `${shop.url}/eu`)] }));
  const { tdb, boss, crawlDb } = await setup(t, { PRICE_CRAWL_SOURCES: file });
  const id = await publishRun(tdb.db, boss, { job: 'crawl-prices', params: {}, trigger: 'manual' });
  const run = await waitForRun(tdb, id, finished, 30_000);
  t.equal(run.state, 'completed', run.error ? JSON.stringify(run.error) : 'completed');
  t.match(run.result, { ok: true, sources: [{ name: 'kr', found: 5, unreadable: 1, failed: 0 }, { name: 'eu', found: 3, unreadable: 0, failed: 0 }], stored: 8 });
  t.equal(Number(run.progress), 1, 'progress reached 1');
  const rows = await crawlDb.selectFrom('wombat.price_observations').select(['run_id']).execute();
  t.equal(rows.length, 8);
  t.ok(rows.every((r) => r.run_id === id), 'observations carry the run id');
});

t.test('a source that no longer matches fails the run at once, naming it; the other source is stored', async (t) => {
  const shop = await startFakeShop();
  t.teardown(() => shop.close());
  const file = await tempFile(t, 'sources.yaml', `sources:\n  - ${JSON.stringify(source('good', `${shop.url}/gpus?page=2`))}\n  - ${JSON.stringify(source('redesigned', `${shop.url}/broken`))}\n`);
  const { tdb, boss, crawlDb } = await setup(t, { PRICE_CRAWL_SOURCES: file });
  const id = await publishRun(tdb.db, boss, { job: 'crawl-prices', params: {}, trigger: 'manual' });
  const run = await waitForRun(tdb, id, finished, 30_000);
  t.equal(run.state, 'failed');
  t.match(run.error, { code: 'crawl_sources_failed', message: /2 source\(s\): 1 ok, 1 failed.*redesigned: .*matched nothing/ });
  t.equal(run.attempts, 1, 'not retried: the next scheduled run is the retry');
  const rows = await crawlDb.selectFrom('wombat.price_observations').select(['source']).execute();
  t.same([...new Set(rows.map((r) => r.source))], ['good']);
  t.equal(rows.length, 2);

  const only = await publishRun(tdb.db, boss, { job: 'crawl-prices', params: { sources: ['good'] }, trigger: 'manual' });
  t.equal((await waitForRun(tdb, only, finished, 30_000)).state, 'completed', 'params.sources narrows a run');
});

t.test('collect-posts runs against Reddit and records the result; crawl-prices without sources fails saying what to set', async (t) => {
  const reddit = await startFakeReddit();
  t.teardown(() => reddit.close());
  reddit.addPosts(makePosts('hardware', 120, Math.floor(Date.now() / 1000) - 60, 300, 'w'));
  const { tdb, boss, crawlDb } = await setup(t, { REDDIT_SUBREDDITS: 'hardware', REDDIT_BASE_URL: reddit.url });
  const id = await publishRun(tdb.db, boss, { job: 'collect-posts', params: {}, trigger: 'manual' });
  const run = await waitForRun(tdb, id, finished, 30_000);
  t.equal(run.state, 'completed', run.error ? JSON.stringify(run.error) : 'completed');
  t.match(run.result, { ok: true, mode: 'public', subreddits: [{ subreddit: 'hardware', pages: 2, inserted: 120 }] });
  const n = await crawlDb.selectFrom('wombat.reddit_posts').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  t.equal(Number(n.n), 120);

  reddit.addPosts(makePosts('hidden', 3, Math.floor(Date.now() / 1000) - 60, 300, 'z'));
  reddit.setPrivate('hidden');
  const priv = await publishRun(tdb.db, boss, { job: 'collect-posts', params: { subreddits: ['hidden'] }, trigger: 'manual' });
  const privRun = await waitForRun(tdb, priv, finished, 30_000);
  t.equal(privRun.state, 'failed');
  t.match(privRun.error, { code: 'collect_posts_failed', message: /r\/hidden: r\/hidden cannot be read: private/ });
  t.equal(privRun.attempts, 1, 'a private subreddit is not retried');

  const crawl = await publishRun(tdb.db, boss, { job: 'crawl-prices', params: {}, trigger: 'manual' });
  const failed = await waitForRun(tdb, crawl, finished, 30_000);
  t.equal(failed.state, 'failed');
  t.match(failed.error, { code: 'price_crawl_not_configured', message: /set PRICE_CRAWL_SOURCES/ });
});

t.test('the worker refuses to start with a bad sources file, naming each bad entry', async (t) => {
  const file = await tempFile(t, 'sources.yaml', 'sources:\n  - name: a\n    url: not-a-url\n    items: li\n    name_field: .t\n    price: .p\n  - name: b\n    url: https://shop.example/x\n    items: li\n    price: .p\n');
  const problem = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (e) {
      t.ok(e instanceof ConfigError, 'a ConfigError');
      return (e as Error).message;
    }
    return '';
  };
  const msg = problem({ PRICE_CRAWL_SOURCES: file, REDDIT_CLIENT_ID: 'only-id' });
  t.match(msg, /sources\[0\] "a": url "not-a-url" must be an absolute http\(s\) URL/);
  t.match(msg, /sources\[1\] "b": needs name_field/);
  t.match(msg, /REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET must be set together/);
  const subs = problem({ REDDIT_SUBREDDITS: 'ok,r/also_ok,not ok' });
  t.match(subs, /REDDIT_SUBREDDITS=.*"not ok": subreddit names are/);
  t.notMatch(subs, /"also_ok"/, 'an r/ prefix is accepted');
  t.equal(problem({ PRICE_CRAWL_SOURCES: file, WORKER_QUEUES: 'fetch-candles,collect-posts' }), '', 'a worker that does not crawl prices does not read the file');
  t.match(problem({ PRICE_CRAWL_SOURCES: path.join(path.dirname(file), 'missing.yaml') }), /PRICE_CRAWL_SOURCES: cannot read .*missing.yaml: ENOENT/);
});

t.test('two workers never run two crawls at once: the second run waits for the first (singleton queue)', async (t) => {
  const shop = await startFakeShop();
  t.teardown(() => shop.close());
  const file = await tempFile(t, 'sources.json', JSON.stringify({ sources: [source('slow', `${shop.url}/slow`)] }));
  const tdb: TestDatabase = await createTestDatabase(t);
  const crawls = createCrawls(loadFields(crawlFields, { PRICE_CRAWL_SOURCES: file }), { log: tdb.log, db: tdb.db });
  const { boss } = await startTestWorker(t, tdb, { queues: ['crawl-prices'], crawls });
  await startTestWorker(t, tdb, { queues: ['crawl-prices'], crawls });
  const a = await publishRun(tdb.db, boss, { job: 'crawl-prices', params: {}, trigger: 'manual' });
  const b = await publishRun(tdb.db, boss, { job: 'crawl-prices', params: {}, trigger: 'task' });
  const [ra, rb] = [await waitForRun(tdb, a, finished, 60_000), await waitForRun(tdb, b, finished, 60_000)];
  t.equal(ra.state, 'completed');
  t.equal(rb.state, 'completed');
  const [first, second] = ra.started_at! <= rb.started_at! ? [ra, rb] : [rb, ra];
  t.ok(second.started_at! >= first.finished_at!, 'the second run started after the first one finished');
  t.equal(shop.maxInFlight(), 1);
});
