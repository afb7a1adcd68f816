import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestDatabase } from '@wombat/core/testing';
import { makePosts, startFakeReddit, startFakeShop } from '@wombat/collectors/testing';
import { runNode } from './helpers.ts';

const scripts = path.join(import.meta.dirname, '..', 'scripts');

/** A collector script as an operator runs it (JSON logs at info). */
const runScript = (name: string, args: string[], env: Record<string, string>) => runNode(path.join(scripts, name), args, { LOG_LEVEL: 'info', ...env });

async function tempFile(t: { teardown(fn: () => unknown): void }, name: string, text: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-crawl-script-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

t.test('crawl-prices: stores observations, exits 0 only when every source succeeded, 2 on a bad sources file', async (t) => {
  const shop = await startFakeShop();
  t.teardown(() => shop.close());
  const db = await createTestDatabase(t);
  const src = (name: string, p: string) => `  - { name: ${name}, url: "${shop.url}${p}", items: li.product, name_field: a.title, price: .price, availability: .stock, allow_private: true }\n`;
  const good = await tempFile(t, 'good.yaml', `user_agent: "WombatTest/1.0 (+mailto:ops@example.com)"\ndefaults: { requestsPerSecond: 20 }\nsources:\n${src('kr', '/gpus')}${src('eu', '/eu')}`);
  const ok = await runScript('crawl-prices.ts', [], { DATABASE_URL: db.url, PRICE_CRAWL_SOURCES: good });
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /^kr: ok, 5 found \(3 priced, 1 sold out, 1 unreadable\), 0 of 1 page\(s\) failed$/m);
  t.match(ok.stdout, /^2 source\(s\): 2 ok, 0 failed; 8 items found, 1 unreadable, 0 page\(s\) failed; 8 observations stored$/m);
  const [row] = await db.sql<{ n: number; runs: number }[]>`select count(*)::int as n, count(run_id)::int as runs from wombat.price_observations`;
  t.same(row, { n: 8, runs: 0 }, 'stored without a run (a script is not a job)');
  t.ok(shop.requests.every((r) => r.userAgent === 'WombatTest/1.0 (+mailto:ops@example.com)'), 'the sources file names the User-Agent');

  const broken = await tempFile(t, 'broken.yaml', `sources:\n${src('kr', '/gpus?page=2')}${src('redesigned', '/broken')}`);
  const partly = await runScript('crawl-prices.ts', ['--dry-run'], { PRICE_CRAWL_SOURCES: broken });
  t.equal(partly.code, 1, 'a failed source fails the script');
  t.match(partly.stdout, /^redesigned: failed, 0 found .*1 of 1 page\(s\) failed$/m);
  t.match(partly.stdout, /^ {2}http:.*\/broken: items selector "li.product" matched nothing on the page; the page no longer matches/m);
  t.match(partly.stdout, /dry run, nothing stored/);

  const bad = await tempFile(t, 'bad.yaml', 'sources:\n  - { name: x, url: "nope", items: li, price: .p }\n');
  const refused = await runScript('crawl-prices.ts', [], { PRICE_CRAWL_SOURCES: bad });
  t.equal(refused.code, 2);
  t.match(refused.stderr, /sources\[0\] "x": url "nope" must be an absolute http\(s\) URL/);
  t.match(refused.stderr, /sources\[0\] "x": needs name_field/);
  const unset = await runScript('crawl-prices.ts', [], {});
  t.equal(unset.code, 2);
  t.match(unset.stderr, /PRICE_CRAWL_SOURCES is not set/);
});

t.test('collect-posts: OAuth token shared by two processes through PostgreSQL; a failed subreddit exits 1; bad names exit 2', async (t) => {
  const reddit = await startFakeReddit({ clients: { cid: 'csecret' } });
  t.teardown(() => reddit.close());
  reddit.addPosts(makePosts('hardware', 150, Math.floor(Date.now() / 1000) - 60, 300, 'x'));
  reddit.addPosts(makePosts('hidden', 3, Math.floor(Date.now() / 1000) - 60, 300, 'y'));
  reddit.setPrivate('hidden');
  const db = await createTestDatabase(t);
  const env = { DATABASE_URL: db.url, REDDIT_BASE_URL: reddit.url, REDDIT_OAUTH_BASE_URL: reddit.url, REDDIT_CLIENT_ID: 'cid', REDDIT_CLIENT_SECRET: 'csecret', REDDIT_SUBREDDITS: 'hardware' };
  const first = await runScript('collect-posts.ts', [], env);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /^r\/hardware: ok, 2 page\(s\), 150 seen, 150 new, 0 refreshed$/m);
  t.match(first.stdout, /\(oauth\)$/m);
  const second = await runScript('collect-posts.ts', ['--subreddits', 'hardware,r/hidden'], env);
  t.equal(second.code, 1, 'a failed subreddit fails the script');
  t.match(second.stdout, /^r\/hardware: ok, .* 0 new/m);
  t.match(second.stdout, /^r\/hidden: failed, .*private \(403\)/m);
  t.equal(reddit.tokensIssued(), 1, 'the second process used the token the first one stored');
  t.notMatch(first.stdout + second.stdout, /csecret/, 'the secret never reaches the output');

  const bad = await runScript('collect-posts.ts', ['--subreddits', 'no spaces', '--max-pages', 'x'], env);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--max-pages must be a whole number/);
  const badName = await runScript('collect-posts.ts', ['--subreddits', 'no spaces'], env);
  t.equal(badName.code, 2);
  t.match(badName.stderr, /--subreddits\.0 /);
});
