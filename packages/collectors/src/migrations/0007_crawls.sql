-- ETL crawls (issue 14): the daily price crawl and the community-post collection.

-- One row per item per price-crawl run. price is null when the item is sold out
-- without a price, or when its price text could not be read (status 'unreadable',
-- problem says why); raw is the price text exactly as the page showed it.
-- run_id is the run that observed it (null for a manual script run).
create table wombat.price_observations (
  id bigint generated always as identity primary key,
  run_id uuid,
  source text not null,
  product text not null,
  url text not null,
  status text not null check (status in ('priced', 'sold_out', 'unreadable')),
  price numeric(20, 4) check (price is null or price > 0),
  currency text check (currency is null or currency ~ '^[A-Z]{3}$'),
  in_stock boolean,
  raw text not null,
  problem text,
  observed_at timestamptz not null default now(),
  check ((status = 'priced') = (price is not null)),
  check (status <> 'priced' or currency is not null)
);
-- A retried run rewrites its own rows instead of adding a second set.
create unique index price_observations_run_item on wombat.price_observations (run_id, source, product) where run_id is not null;
create index price_observations_product on wombat.price_observations (product, source, observed_at desc);

-- Latest readable price of each product at each source, with the price before it
-- (from an earlier observation in the same currency) and the change between them.
create view wombat.latest_prices as
select product, source, url, price, currency, in_stock, observed_at,
       previous_price, previous_observed_at,
       price - previous_price as change,
       round((price - previous_price) / previous_price, 6) as change_ratio
from (
  select o.product, o.source, o.url, o.price, o.currency, o.in_stock, o.observed_at,
         lag(o.price) over w as previous_price,
         lag(o.observed_at) over w as previous_observed_at,
         row_number() over (partition by o.product, o.source, o.currency order by o.observed_at desc, o.id desc) as newest
  from wombat.price_observations o
  where o.status = 'priced'
  window w as (partition by o.product, o.source, o.currency order by o.observed_at, o.id)
) x
where newest = 1;

-- Reddit posts, upserted by id (base36, without the t3_ prefix). A post deleted or
-- removed later keeps the title and text first collected; the flags say what happened.
create table wombat.reddit_posts (
  id text primary key,
  subreddit text not null,
  title text not null,
  author text,
  created_utc timestamptz not null,
  score integer not null,
  num_comments integer not null,
  url text,
  permalink text not null,
  flair text,
  selftext text not null default '',
  over_18 boolean not null default false,
  removed boolean not null default false,
  deleted boolean not null default false,
  removed_by_category text,
  first_fetched_at timestamptz not null default now(),
  fetched_at timestamptz not null default now()
);
create index reddit_posts_subreddit_created on wombat.reddit_posts (lower(subreddit), created_utc desc);

-- Reddit app-only OAuth tokens, shared by every process using the same client id:
-- key_hash is sha256(token URL, client id, client secret); the credentials are not stored.
create table wombat.reddit_tokens (
  key_hash text primary key,
  token text not null,
  issued_at timestamptz not null,
  expires_at timestamptz not null,
  updated_at timestamptz not null default now()
);

-- Reddit's request budget as its X-Ratelimit-* headers last stated it, per client
-- (OAuth client id, or 'public' for the unauthenticated JSON): every process
-- reads and spends the same budget.
create table wombat.reddit_rate_limits (
  client_key text primary key,
  remaining double precision not null,
  used integer,
  reset_at timestamptz not null,
  updated_at timestamptz not null default now()
);
