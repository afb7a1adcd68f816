-- Collected market data and exchange state shared by every collector process.

-- Optional Postgres mirror of the Parquet candle files: one row per candle,
-- time = candle start in UTC.
create table wombat.candles (
  exchange text not null,
  symbol text not null,
  timeframe text not null,
  time timestamptz not null,
  open double precision not null,
  high double precision not null,
  low double precision not null,
  close double precision not null,
  volume double precision not null,
  quote_volume double precision not null,
  updated_at timestamptz not null default now(),
  primary key (exchange, symbol, timeframe, time)
);

-- Exchange symbols, refreshed by collect-symbols. A symbol missing from the
-- exchange's list is kept and marked inactive (delisted), never deleted.
create table wombat.symbols (
  exchange text not null,
  symbol text not null,
  name text not null,
  english_name text,
  market text not null,
  active boolean not null default true,
  first_seen timestamptz not null default now(),
  last_seen timestamptz not null default now(),
  delisted_at timestamptz,
  updated_at timestamptz not null default now(),
  primary key (exchange, symbol)
);
create index symbols_active on wombat.symbols (exchange, market) where active;

-- KIS access tokens, shared by every process using the same app key: KIS limits
-- how often a token may be issued, so processes and restarts reuse one.
-- key_hash is sha256(base URL, app key, app secret); the credentials are not stored.
create table wombat.kis_tokens (
  key_hash text primary key,
  token text not null,
  issued_at timestamptz not null,
  expires_at timestamptz not null,
  updated_at timestamptz not null default now()
);
