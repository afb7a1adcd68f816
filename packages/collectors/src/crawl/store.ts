import { sql, type Generated, type Kysely } from 'kysely';

/** Tables of migrations/0007_crawls.sql. */
export interface PriceObservationsTable {
  id: Generated<string>;
  run_id: string | null;
  source: string;
  product: string;
  url: string;
  status: 'priced' | 'sold_out' | 'unreadable';
  price: string | number | null;
  currency: string | null;
  in_stock: boolean | null;
  raw: string;
  problem: string | null;
  observed_at: Date;
}

export interface LatestPricesView {
  product: string;
  source: string;
  url: string;
  price: string;
  currency: string;
  in_stock: boolean | null;
  observed_at: Date;
  previous_price: string | null;
  previous_observed_at: Date | null;
  change: string | null;
  change_ratio: string | null;
}

export interface RedditPostsTable {
  id: string;
  subreddit: string;
  title: string;
  author: string | null;
  created_utc: Date;
  score: number;
  num_comments: number;
  url: string | null;
  permalink: string;
  flair: string | null;
  selftext: string;
  over_18: boolean;
  removed: boolean;
  deleted: boolean;
  removed_by_category: string | null;
  first_fetched_at: Generated<Date>;
  fetched_at: Date;
}

export interface RedditTokensTable {
  key_hash: string;
  token: string;
  issued_at: Date;
  expires_at: Date;
  updated_at: Generated<Date>;
}

export interface RedditRateLimitsTable {
  client_key: string;
  remaining: number;
  used: number | null;
  reset_at: Date;
  updated_at: Generated<Date>;
}

export interface CrawlTables {
  'wombat.price_observations': PriceObservationsTable;
  'wombat.latest_prices': LatestPricesView;
  'wombat.reddit_posts': RedditPostsTable;
  'wombat.reddit_tokens': RedditTokensTable;
  'wombat.reddit_rate_limits': RedditRateLimitsTable;
}

export type CrawlDb = Kysely<CrawlTables>;

export type Observation = Omit<PriceObservationsTable, 'id'>;

/**
 * Stores one source's observations of a run. A retried run replaces its rows
 * (unique run, source, product) instead of adding a second set. Rows are
 * expected checked (see `observe` in price-crawl.ts): products unique, text
 * without NUL, prices within numeric(20,4).
 */
export async function insertObservations(db: CrawlDb, rows: Observation[]): Promise<number> {
  if (rows.length === 0) return 0;
  // One transaction: a source's observations of a run are stored whole or not at all.
  return db.transaction().execute((trx) => insertChunks(trx, rows));
}

async function insertChunks(db: CrawlDb, rows: Observation[]): Promise<number> {
  let written = 0;
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500);
    const withRun = chunk.filter((r) => r.run_id !== null);
    const withoutRun = chunk.filter((r) => r.run_id === null);
    if (withRun.length > 0) {
      const res = await db
        .insertInto('wombat.price_observations')
        .values(withRun)
        .onConflict((oc) =>
          oc
            .columns(['run_id', 'source', 'product'])
            .where('run_id', 'is not', null)
            .doUpdateSet((eb) => ({
              url: eb.ref('excluded.url'),
              status: eb.ref('excluded.status'),
              price: eb.ref('excluded.price'),
              currency: eb.ref('excluded.currency'),
              in_stock: eb.ref('excluded.in_stock'),
              raw: eb.ref('excluded.raw'),
              problem: eb.ref('excluded.problem'),
              observed_at: eb.ref('excluded.observed_at'),
            })),
        )
        .executeTakeFirst();
      written += Number(res.numInsertedOrUpdatedRows ?? 0n);
    }
    if (withoutRun.length > 0) {
      const res = await db.insertInto('wombat.price_observations').values(withoutRun).executeTakeFirst();
      written += Number(res.numInsertedOrUpdatedRows ?? 0n);
    }
  }
  return written;
}

export async function latestPrices(db: CrawlDb, product?: string): Promise<LatestPricesView[]> {
  let q = db.selectFrom('wombat.latest_prices').selectAll().orderBy('product').orderBy('source');
  if (product) q = q.where('product', '=', product);
  return q.execute();
}

/** Posts of a subreddit among `ids` already stored. */
export async function storedPostIds(db: CrawlDb, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db.selectFrom('wombat.reddit_posts').select('id').where('id', 'in', ids).execute();
  return new Set(rows.map((r) => r.id));
}

export type PostRow = Omit<RedditPostsTable, 'first_fetched_at'>;

/**
 * Upserts posts by id. Score, comments, flair and flags follow Reddit; the title
 * and text first collected survive a later deletion or removal ("[deleted]",
 * "[removed]" placeholders never overwrite them).
 */
export async function upsertPosts(db: CrawlDb, rows: PostRow[]): Promise<{ inserted: number; updated: number }> {
  if (rows.length === 0) return { inserted: 0, updated: 0 };
  const result = await db
    .insertInto('wombat.reddit_posts')
    .values(rows)
    .onConflict((oc) =>
      oc.column('id').doUpdateSet((eb) => ({
        score: eb.ref('excluded.score'),
        num_comments: eb.ref('excluded.num_comments'),
        flair: eb.ref('excluded.flair'),
        over_18: eb.ref('excluded.over_18'),
        removed: sql<boolean>`wombat.reddit_posts.removed or excluded.removed`,
        deleted: sql<boolean>`wombat.reddit_posts.deleted or excluded.deleted`,
        removed_by_category: sql<string | null>`coalesce(excluded.removed_by_category, wombat.reddit_posts.removed_by_category)`,
        selftext: sql<string>`case when excluded.selftext in ('[deleted]', '[removed]') then wombat.reddit_posts.selftext else excluded.selftext end`,
        title: sql<string>`case when excluded.title in ('[deleted]', '[removed]', '[deleted by user]') then wombat.reddit_posts.title else excluded.title end`,
        author: sql<string | null>`case when excluded.author is null then wombat.reddit_posts.author else excluded.author end`,
        url: eb.ref('excluded.url'),
        fetched_at: eb.ref('excluded.fetched_at'),
      })),
    )
    .returning(sql<boolean>`(xmax = 0)`.as('inserted'))
    .execute();
  const inserted = result.filter((r) => r.inserted).length;
  return { inserted, updated: result.length - inserted };
}
