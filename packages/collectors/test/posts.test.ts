import t from 'tap';
import { createTestDatabase, testLogger } from '@wombat/core/testing';
import { collectPosts, redditBudget, type CrawlTables, type PostCollectionOptions } from '@wombat/collectors';
import { makePosts, startFakeReddit, type FakeReddit, type FakeRedditOptions } from '@wombat/collectors/testing';

interface Teardown {
  teardown(fn: () => unknown): void;
}

const UA = 'linux:wombat-test:0.1 (by /u/wombat)';
const NOW_S = Math.floor(Date.now() / 1000);
const HOUR = 3600;

async function reddit(t: Teardown, opts: FakeRedditOptions = {}): Promise<FakeReddit> {
  const r = await startFakeReddit(opts);
  t.teardown(() => r.close());
  return r;
}

type Db = Awaited<ReturnType<typeof createTestDatabase<CrawlTables>>>;

function options(fake: FakeReddit, tdb: Db, extra: Partial<PostCollectionOptions> = {}): PostCollectionOptions {
  return {
    db: tdb.db,
    baseUrl: fake.url,
    oauthBaseUrl: fake.url,
    userAgent: UA,
    subreddits: ['hardware'],
    horizonHours: 72,
    refreshHours: 24,
    maxPages: 10,
    log: testLogger('posts'),
    retryBaseDelayMs: 10,
    timeoutMs: 2000,
    ...extra,
  };
}

const stored = (tdb: Db, id: string) => tdb.db.selectFrom('wombat.reddit_posts').selectAll().where('id', '=', id).executeTakeFirst();
const count = async (tdb: Db) => Number((await tdb.db.selectFrom('wombat.reddit_posts').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);

t.test('pages back through /new, stores every post faithfully, and a re-run is idempotent', async (t) => {
  const fake = await reddit(t);
  const tdb = await createTestDatabase<CrawlTables>(t);
  const posts = makePosts('hardware', 230, NOW_S - 60, 600);
  posts[0] = { ...posts[0]!, title: '오늘의 그래픽카드 가격 🚀🔥 RTX 4090 ₩2,890,000', selftext: '품절 대란… 👀\n\n“인용” — é (e\u0301)', author: '김철수' };
  posts[1] = { ...posts[1]!, over_18: true, link_flair_text: 'NSFW 🔞' };
  posts[2] = { ...posts[2]!, selftext: '[removed]', removed_by_category: 'moderator' };
  posts[3] = { ...posts[3]!, author: '[deleted]', selftext: '[deleted]', removed_by_category: 'deleted' };
  fake.addPosts(posts);
  const progress: number[] = [];
  const r = await collectPosts(options(fake, tdb), { onProgress: (f) => progress.push(f) });
  t.match(r, { ok: true, mode: 'public', subreddits: [{ subreddit: 'hardware', status: 'ok', pages: 3, seen: 230, inserted: 230, updated: 0 }] });
  t.equal(await count(tdb), 230);
  t.equal(progress.at(-1), 1);
  t.match(await stored(tdb, posts[0]!.id), {
    subreddit: 'hardware',
    title: '오늘의 그래픽카드 가격 🚀🔥 RTX 4090 ₩2,890,000',
    selftext: '품절 대란… 👀\n\n“인용” — é (e\u0301)',
    author: '김철수',
    score: 10,
    permalink: `/r/hardware/comments/${posts[0]!.id}/post_0/`,
    over_18: false,
    removed: false,
    deleted: false,
  });
  t.equal((await stored(tdb, posts[0]!.id))!.created_utc.getTime(), (NOW_S - 60) * 1000);
  t.match(await stored(tdb, posts[1]!.id), { over_18: true, flair: 'NSFW 🔞' });
  t.match(await stored(tdb, posts[2]!.id), { removed: true, deleted: false, removed_by_category: 'moderator', selftext: '[removed]' });
  t.match(await stored(tdb, posts[3]!.id), { removed: false, deleted: true, author: null });
  t.ok(fake.requests.every((q) => q.userAgent === UA), 'every request says who we are');
  t.ok(fake.requests.every((q) => /raw_json=1/.test(q.path) && /limit=100/.test(q.path)));

  const again = await collectPosts(options(fake, tdb));
  t.match(again.subreddits[0], { inserted: 0, status: 'ok' }, 'nothing new: nothing inserted');
  t.equal(await count(tdb), 230, 'a re-run adds no rows');
});

t.test('stops at stored posts older than the refresh age, refreshes younger ones, keeps what a deletion hides', async (t) => {
  const fake = await reddit(t);
  const tdb = await createTestDatabase<CrawlTables>(t);
  // One post every 20 minutes: 100 posts span 33 h, so page 1 holds 24 h of them and more.
  const posts = makePosts('korea', 300, NOW_S - 60, 1200, 'k');
  fake.addPosts(posts);
  const first = await collectPosts(options(fake, tdb, { subreddits: ['korea'], horizonHours: 200 }));
  t.match(first.subreddits[0], { pages: 3, inserted: 300 });

  const fresh = makePosts('korea', 5, NOW_S - 10, 1, 'n');
  fake.addPosts(fresh);
  fake.updatePost('k1', { score: 999, num_comments: 42, author: '[deleted]', selftext: '[deleted]', removed_by_category: 'deleted', title: '[deleted by user]' });
  fake.updatePost('k2', { title: 'post 2 of r/korea ✏️' });
  const oldId = 'k' + (200).toString(36);
  fake.updatePost(oldId, { score: 12345 });
  const before = fake.requests.length;
  const second = await collectPosts(options(fake, tdb, { subreddits: ['korea'], horizonHours: 200 }));
  t.match(second.subreddits[0], { status: 'ok', pages: 1, inserted: 5 }, 'one page: it reached stored posts older than the refresh age');
  t.equal(fake.requests.length - before, 1);
  t.match(await stored(tdb, 'k1'), { score: 999, num_comments: 42, deleted: true, title: 'post 1 of r/korea', author: 'user1' }, 'the deleted post keeps its title and author; its counts are refreshed');
  t.match(await stored(tdb, 'k2'), { title: 'post 2 of r/korea ✏️' }, 'an edited title is refreshed');
  t.equal((await stored(tdb, oldId))!.score, 10 + 200, 'a post older than the refresh age is left as stored');
});

t.test('paging stops at the horizon and at maxPages', async (t) => {
  const fake = await reddit(t);
  const tdb = await createTestDatabase<CrawlTables>(t);
  fake.addPosts(makePosts('gpus', 400, NOW_S - 60, 1800, 'g'));
  const r = await collectPosts(options(fake, tdb, { subreddits: ['gpus'], horizonHours: 48 }));
  // 48 h at one post per 30 min: 96 posts inside the horizon, all on page 1.
  t.match(r.subreddits[0], { pages: 1, seen: 96, inserted: 96 });
  // With every stored post inside the refresh age, only maxPages stops the paging.
  const capped = await collectPosts(options(fake, tdb, { subreddits: ['gpus'], refreshHours: 1000 }), { horizonHours: 1000, maxPages: 2 });
  t.match(capped.subreddits[0], { pages: 2, inserted: 104, updated: 96 });
});

t.test('OAuth: one app-only token shared through PostgreSQL, renewed once when refused; bad credentials fail clearly', async (t) => {
  const fake = await reddit(t, { clients: { 'client-1': 'secret-1' } });
  const tdb = await createTestDatabase<CrawlTables>(t);
  fake.addPosts(makePosts('hardware', 50, NOW_S - 60, 600, 'o'));
  const oauth = { clientId: 'client-1', clientSecret: 'secret-1' };
  const r = await collectPosts(options(fake, tdb, oauth));
  t.match(r, { ok: true, mode: 'oauth', subreddits: [{ inserted: 50 }] });
  t.equal(fake.tokensIssued(), 1);
  const row = await tdb.db.selectFrom('wombat.reddit_tokens').selectAll().executeTakeFirstOrThrow();
  t.ok(row.expires_at.getTime() > Date.now() + 23 * HOUR * 1000, 'the token is stored with its expiry');
  t.ok(fake.requests.filter((q) => q.path.startsWith('/r/')).every((q) => /\/new\?/.test(q.path)), 'listings come from the OAuth host, not the .json pages');
  await collectPosts(options(fake, tdb, oauth));
  t.equal(fake.tokensIssued(), 1, 'the stored token is reused');

  fake.revokeTokens();
  const renewed = await collectPosts(options(fake, tdb, oauth));
  t.equal(renewed.ok, true);
  t.equal(fake.tokensIssued(), 2, 'a refused token is replaced once');

  const bad = await collectPosts(options(fake, tdb, { clientId: 'client-1', clientSecret: 'wrong' }));
  t.match(bad, { ok: false, subreddits: [{ status: 'failed', error: /Reddit refused to issue a token \(401.*check REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET/ }] });
});

t.test('faults: 500, 429 and a non-JSON page are retried; private and unknown subreddits fail alone', async (t) => {
  const fake = await reddit(t);
  const tdb = await createTestDatabase<CrawlTables>(t);
  fake.addPosts(makePosts('hardware', 20, NOW_S - 60, 600, 'h'));
  fake.addPosts(makePosts('secret', 5, NOW_S - 60, 600, 's'));
  fake.setPrivate('secret');
  fake.inject('500');
  fake.inject('malformed');
  fake.inject('429');
  const r = await collectPosts(options(fake, tdb, { subreddits: ['secret', 'hardware', 'nosuchsub'] }));
  const by = Object.fromEntries(r.subreddits.map((s) => [s.subreddit, s]));
  t.match(by.hardware, { status: 'ok', inserted: 20 });
  t.match(by.secret, { status: 'failed', error: /r\/secret cannot be read: private \(403\)/ });
  t.match(by.nosuchsub, { status: 'failed', error: /r\/nosuchsub does not exist/ });
  t.equal(r.ok, false);
  t.equal(r.retryable, false, 'a private or unknown subreddit is not worth a retry');
  t.match(r.summary, /3 subreddit\(s\): 1 ok, 2 failed/);

  fake.inject('500', 5);
  const down = await collectPosts(options(fake, tdb, { subreddits: ['hardware'], retries: 4 }));
  t.match(down, { ok: false, retryable: true, subreddits: [{ status: 'failed', error: /failed after 5 attempts: .*answered 500/ }] }, 'a server that stays down is');
});

t.test('X-Ratelimit headers bind two collectors sharing the database: the budget is never overrun', async (t) => {
  const fake = await reddit(t, { limit: 4, windowSeconds: 2 });
  const tdb = await createTestDatabase<CrawlTables>(t);
  for (const sub of ['aaa', 'bbb', 'ccc', 'ddd', 'eee', 'fff']) fake.addPosts(makePosts(sub, 30, NOW_S - 60, 60, sub));
  const [a, b] = await Promise.all([
    collectPosts(options(fake, tdb, { subreddits: ['aaa', 'bbb', 'ccc'] })),
    collectPosts(options(fake, tdb, { subreddits: ['ddd', 'eee', 'fff'] })),
  ]);
  t.equal(a.ok && b.ok, true, 'both collections complete');
  t.equal(await count(tdb), 180);
  const listings = fake.requests.filter((q) => q.path.startsWith('/r/'));
  t.equal(listings.length, 6);
  // The first request books the unknown window; the other collector waits for its answer.
  t.equal(listings.filter((q) => q.status === 429).length, 0, 'no 429');
  const state = await tdb.db.selectFrom('wombat.reddit_rate_limits').selectAll().executeTakeFirstOrThrow();
  t.equal(state.client_key, `public:${fake.url}`);
  t.ok(state.remaining >= 0 && state.remaining <= 4, 'the budget as Reddit last stated it is stored');
});

t.test('the first request of an unknown window is booked: concurrent first requests do not all go out', async (t) => {
  const fake = await reddit(t, { limit: 1, windowSeconds: 2 });
  const tdb = await createTestDatabase<CrawlTables>(t);
  const subs = ['aaa', 'bbb', 'ccc', 'ddd'];
  for (const sub of subs) fake.addPosts(makePosts(sub, 5, NOW_S - 60, 60, sub));
  const results = await Promise.all(subs.map((sub) => collectPosts(options(fake, tdb, { subreddits: [sub] }))));
  t.ok(results.every((r) => r.ok), 'every collection completes');
  const listings = fake.requests.filter((q) => q.path.startsWith('/r/'));
  t.equal(listings.length, 4);
  t.equal(listings.filter((q) => q.status === 429).length, 0, 'one request per window, the first one included: no 429');
});

t.test('the budget runs on the database clock: a process whose clock is an hour behind still waits for the reset', async (t) => {
  const tdb = await createTestDatabase<CrawlTables>(t);
  const behind = redditBudget({ db: tdb.db, clientKey: 'clock-test', now: () => Date.now() - 3_600_000 });
  const right = redditBudget({ db: tdb.db, clientKey: 'clock-test' });
  await behind.take();
  await behind.observe({ remaining: 0, used: 1, resetSeconds: 2 });
  const started = performance.now();
  await right.take();
  const waited = performance.now() - started;
  // A lower bound, which load only lengthens: with the process clock the window had ended an hour ago.
  t.ok(waited >= 1500, `the other process waited for the window stated by the lagging one (${Math.round(waited)} ms)`);
});

t.test('a Reddit that keeps answering HTML: the error names its content type and length, never its body', async (t) => {
  const fake = await reddit(t);
  const tdb = await createTestDatabase<CrawlTables>(t);
  fake.addPosts(makePosts('hardware', 5, NOW_S - 60, 600, 'h'));
  fake.inject('malformed', 5);
  const r = await collectPosts(options(fake, tdb, { subreddits: ['hardware'], retries: 1 }));
  t.match(r.subreddits[0], { status: 'failed', error: /response body is not JSON \(status 200, content type text\/html, \d+ characters\)/ });
  t.notMatch(JSON.stringify(r), /CDN|having a moment/, 'nothing of the body reaches the result');
});
