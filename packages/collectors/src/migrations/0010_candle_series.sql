-- Per-series figures of wombat.candles (first and last candle, count), kept by
-- triggers on every write, whoever writes (collectors, scripts, SQL by hand): the
-- Data page reads these rows instead of counting the candles table, so it costs
-- the same with ten rows or a hundred million.
create table wombat.candle_series (
  exchange text not null,
  symbol text not null,
  timeframe text not null,
  first_time timestamptz not null,
  last_time timestamptz not null,
  candles bigint not null check (candles > 0),
  updated_at timestamptz not null default now(),
  primary key (exchange, symbol, timeframe)
);

insert into wombat.candle_series (exchange, symbol, timeframe, first_time, last_time, candles)
select exchange, symbol, timeframe, min(time), max(time), count(*) from wombat.candles group by 1, 2, 3;

-- Adds inserted rows: counts and bounds widen without reading the table.
create function wombat.candle_series_inserted() returns trigger language plpgsql as $$
begin
  insert into wombat.candle_series as s (exchange, symbol, timeframe, first_time, last_time, candles)
  select exchange, symbol, timeframe, min(time), max(time), count(*) from new_candles group by 1, 2, 3
  on conflict (exchange, symbol, timeframe) do update
    set first_time = least(s.first_time, excluded.first_time),
        last_time = greatest(s.last_time, excluded.last_time),
        candles = s.candles + excluded.candles,
        updated_at = now();
  return null;
end $$;

-- Recounts the series named in `delta` (candles added, or removed when negative, per
-- series): first and last from the primary key index (two lookups per series), the count
-- by the delta, or counted once for a series that had no row yet.
create function wombat.candle_series_bounds(delta jsonb)
returns table (exchange text, symbol text, timeframe text, n bigint, first_time timestamptz, last_time timestamptz)
language sql stable as $$
  select d.exchange, d.symbol, d.timeframe, d.n,
         (select min(c.time) from wombat.candles c where c.exchange = d.exchange and c.symbol = d.symbol and c.timeframe = d.timeframe),
         (select max(c.time) from wombat.candles c where c.exchange = d.exchange and c.symbol = d.symbol and c.timeframe = d.timeframe)
  from jsonb_to_recordset(delta) as d(exchange text, symbol text, timeframe text, n bigint)
$$;

create function wombat.candle_series_apply(delta jsonb) returns void language plpgsql as $$
begin
  update wombat.candle_series s
     set candles = s.candles + d.n, first_time = d.first_time, last_time = d.last_time, updated_at = now()
    from wombat.candle_series_bounds(delta) d
   where s.exchange = d.exchange and s.symbol = d.symbol and s.timeframe = d.timeframe and d.first_time is not null;
  insert into wombat.candle_series (exchange, symbol, timeframe, first_time, last_time, candles)
  select d.exchange, d.symbol, d.timeframe, d.first_time, d.last_time,
         (select count(*) from wombat.candles c where c.exchange = d.exchange and c.symbol = d.symbol and c.timeframe = d.timeframe)
  from wombat.candle_series_bounds(delta) d
  where d.first_time is not null
  on conflict (exchange, symbol, timeframe) do nothing;
  -- A series whose last candle went.
  delete from wombat.candle_series s
   using jsonb_to_recordset(delta) as d(exchange text, symbol text, timeframe text, n bigint)
   where s.exchange = d.exchange and s.symbol = d.symbol and s.timeframe = d.timeframe
     and not exists (select 1 from wombat.candles c where c.exchange = d.exchange and c.symbol = d.symbol and c.timeframe = d.timeframe);
end $$;

create function wombat.candle_series_deleted() returns trigger language plpgsql as $$
begin
  perform wombat.candle_series_apply(coalesce(
    (select jsonb_agg(jsonb_build_object('exchange', exchange, 'symbol', symbol, 'timeframe', timeframe, 'n', -n))
     from (select exchange, symbol, timeframe, count(*) as n from old_candles group by 1, 2, 3) g), '[]'));
  return null;
end $$;

-- An update that keeps every row's series and time (an upsert refreshing prices) changes
-- nothing here; one that moves rows is a removal from one place and an addition to another.
create function wombat.candle_series_updated() returns trigger language plpgsql as $$
begin
  if not exists (select exchange, symbol, timeframe, time from new_candles
                 except select exchange, symbol, timeframe, time from old_candles) then
    return null;
  end if;
  perform wombat.candle_series_apply(coalesce(
    (select jsonb_agg(jsonb_build_object('exchange', exchange, 'symbol', symbol, 'timeframe', timeframe, 'n', n))
     from (select exchange, symbol, timeframe, sum(n) as n
           from (select exchange, symbol, timeframe, count(*) as n from new_candles group by 1, 2, 3
                 union all
                 select exchange, symbol, timeframe, -count(*) from old_candles group by 1, 2, 3) u
           group by 1, 2, 3) g), '[]'));
  return null;
end $$;

create function wombat.candle_series_truncated() returns trigger language plpgsql as $$
begin
  delete from wombat.candle_series;
  return null;
end $$;

create trigger candle_series_insert after insert on wombat.candles
  referencing new table as new_candles for each statement execute function wombat.candle_series_inserted();
create trigger candle_series_delete after delete on wombat.candles
  referencing old table as old_candles for each statement execute function wombat.candle_series_deleted();
create trigger candle_series_update after update on wombat.candles
  referencing old table as old_candles new table as new_candles for each statement execute function wombat.candle_series_updated();
create trigger candle_series_truncate after truncate on wombat.candles
  for each statement execute function wombat.candle_series_truncated();
