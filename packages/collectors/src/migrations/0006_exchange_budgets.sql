-- Request budgets shared by every process that calls an exchange (Upbit per IP
-- and group, KIS per app key, any politeness budget per host): one row per
-- budget, holding the recent requests and the bans and pauses the exchange
-- imposed. Times are milliseconds since the epoch on this server's clock, so
-- processes on different hosts agree on them.
--
-- used_ms lists the requests that still count towards a window: a settled one
-- by the time its answer came back (the exchange counted it earlier), one still
-- in flight by a provisional time in the future (grant + hold), so it keeps its
-- place until it settles or, if its process died, until the hold has passed.
create table wombat.exchange_budgets (
  name text primary key,
  used_ms bigint[] not null default '{}',
  paused_until_ms bigint not null default 0,
  pause_code text,
  pause_message text,
  banned_until_ms bigint not null default 0,
  ban_code text,
  ban_message text,
  updated_at timestamptz not null default now()
);

-- Takes up to p_n requests of a budget at once (one statement, one row lock).
-- Mirrors takeSlots() in packages/collectors/src/budget-math.ts: a request may
-- start when, for every (limit, window), fewer than limit requests count within
-- window + margin. Returns how many were granted and their stamp, or how long
-- to wait, with any ban or pause in force.
create function wombat.budget_take(p_name text, p_limits int[], p_windows_ms int[], p_n int, p_hold_ms int, p_margin_ms int, p_poll_ms int)
returns table (granted int, stamp double precision, wait_ms double precision,
               banned_until_ms double precision, ban_code text, ban_message text,
               paused_until_ms double precision, pause_code text, pause_message text)
language plpgsql as $$
declare
  b wombat.exchange_budgets%rowtype;
  now_ms bigint;
  max_window int := 0;
  kept bigint[];
  counting bigint[];
  k int := p_n;
  free int;
  wait double precision := 0;
  w double precision;
  blocker bigint;
  in_flight boolean := false;
  i int;
begin
  insert into wombat.exchange_budgets (name) values (p_name) on conflict (name) do nothing;
  select * into b from wombat.exchange_budgets e where e.name = p_name for update;
  -- The clock is read once the row is ours: a grant is never dated before the previous holder's settle.
  now_ms := floor(extract(epoch from clock_timestamp()) * 1000);
  if b.banned_until_ms > now_ms or b.paused_until_ms > now_ms then
    if b.banned_until_ms > now_ms then
      return query select 0, 0::float8, (b.banned_until_ms - now_ms)::float8,
        b.banned_until_ms::float8, b.ban_code, b.ban_message, 0::float8, null::text, null::text;
    else
      return query select 0, 0::float8, (b.paused_until_ms - now_ms)::float8,
        0::float8, null::text, null::text, b.paused_until_ms::float8, b.pause_code, b.pause_message;
    end if;
    return;
  end if;
  for i in 1 .. array_length(p_windows_ms, 1) loop
    max_window := greatest(max_window, p_windows_ms[i]);
  end loop;
  select coalesce(array_agg(t order by t), '{}') into kept from unnest(b.used_ms) t where t + max_window + p_margin_ms > now_ms;
  for i in 1 .. array_length(p_limits, 1) loop
    select coalesce(array_agg(t order by t), '{}') into counting from unnest(kept) t where t + p_windows_ms[i] + p_margin_ms > now_ms;
    free := p_limits[i] - coalesce(array_length(counting, 1), 0);
    k := least(k, free);
    if free <= 0 then
      -- The request that must leave this window before one more may start.
      blocker := counting[1 - free];
      if blocker > now_ms then
        in_flight := true;
      else
        w := blocker + p_windows_ms[i] + p_margin_ms - now_ms;
        wait := greatest(wait, w);
      end if;
    end if;
  end loop;
  if k <= 0 then
    if in_flight then
      wait := case when wait > 0 then least(wait, p_poll_ms) else p_poll_ms end;
    end if;
    update wombat.exchange_budgets e set used_ms = kept where e.name = p_name;
    return query select 0, 0::float8, greatest(wait, 1)::float8, 0::float8, null::text, null::text, 0::float8, null::text, null::text;
    return;
  end if;
  update wombat.exchange_budgets e
     set used_ms = kept || array_fill(now_ms + p_hold_ms, array[k]), updated_at = now()
   where e.name = p_name;
  return query select k, (now_ms + p_hold_ms)::float8, 0::float8, 0::float8, null::text, null::text, 0::float8, null::text, null::text;
end $$;

-- The answer to up to p_count requests granted with p_stamp came back: they now
-- count from this moment. With p_unused they never went out and are removed.
create function wombat.budget_settle(p_name text, p_stamp bigint, p_count int, p_unused boolean)
returns void language plpgsql as $$
declare
  now_ms bigint;
  left_ int := p_count;
  used bigint[];
  out_ bigint[] := '{}';
  t bigint;
begin
  -- Lock first, then read: a take committed meanwhile must not be overwritten.
  select e.used_ms into used from wombat.exchange_budgets e where e.name = p_name for update;
  now_ms := floor(extract(epoch from clock_timestamp()) * 1000);
  foreach t in array coalesce(used, '{}') loop
    if left_ > 0 and t = p_stamp then
      left_ := left_ - 1;
      if not p_unused then out_ := out_ || now_ms; end if;
    else
      out_ := out_ || t;
    end if;
  end loop;
  update wombat.exchange_budgets e set used_ms = out_ where e.name = p_name;
end $$;

-- A ban (nothing may call until it ends) or a pause (calls wait until it ends),
-- recorded by the process the exchange told; never shortens one in force.
create function wombat.budget_block(p_name text, p_kind text, p_ms bigint, p_code text, p_message text)
returns void language plpgsql as $$
declare
  until_ms bigint := floor(extract(epoch from clock_timestamp()) * 1000) + p_ms;
begin
  insert into wombat.exchange_budgets (name) values (p_name) on conflict (name) do nothing;
  if p_kind = 'ban' then
    update wombat.exchange_budgets e set banned_until_ms = until_ms, ban_code = p_code, ban_message = p_message, updated_at = now()
     where e.name = p_name and e.banned_until_ms < until_ms;
  else
    update wombat.exchange_budgets e set paused_until_ms = until_ms, pause_code = p_code, pause_message = p_message, updated_at = now()
     where e.name = p_name and e.paused_until_ms < until_ms;
  end if;
end $$;

-- KIS token issuance without a transaction held across the HTTP call: one
-- process claims the right to issue (issuing_until), the others wait for the
-- token to appear; last_issued_at spaces issuances by KIS's interval.
alter table wombat.kis_tokens alter column token drop not null;
alter table wombat.kis_tokens alter column issued_at drop not null;
alter table wombat.kis_tokens alter column expires_at drop not null;
alter table wombat.kis_tokens add column issuing_until timestamptz;
alter table wombat.kis_tokens add column issuing_by text;
alter table wombat.kis_tokens add column last_attempt_at timestamptz;
