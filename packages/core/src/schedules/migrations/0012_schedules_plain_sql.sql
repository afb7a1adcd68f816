-- Schedules written in plain SQL: `insert into wombat.schedules (name, job, every) values
-- ('sweep', 'canary', '5m')` just works. The database derives what must agree with the
-- trigger column given (kind, every_seconds), normalises it as the api does (cron spacing,
-- sorted times), and refuses a row the engine could not run with a message that says what
-- to fix. The engine still checks every row it reads (params, full cron syntax).
--
-- Column-specific: the engine's bookkeeping (next_run_at, last_run_*) never fires it.
create function wombat.schedules_derive() returns trigger language plpgsql as $$
declare
  given integer;
  derived text;
  m text[];
  seconds bigint;
  fields integer;
  known text;
  found_job boolean;
begin
  -- An UPDATE that sets one trigger column and leaves the old one: the new one replaces it.
  if tg_op = 'UPDATE' and (new.cron is not null)::int + (new.every is not null)::int + (new.times is not null)::int > 1 then
    if new.cron is distinct from old.cron and new.every is not distinct from old.every and new.times is not distinct from old.times then
      new.every := null; new.times := null;
    elsif new.every is distinct from old.every and new.cron is not distinct from old.cron and new.times is not distinct from old.times then
      new.cron := null; new.times := null;
    elsif new.times is distinct from old.times and new.cron is not distinct from old.cron and new.every is not distinct from old.every then
      new.cron := null; new.every := null;
    end if;
  end if;

  given := (new.cron is not null)::int + (new.every is not null)::int + (new.times is not null)::int;
  if given <> 1 then
    raise exception 'schedules: give exactly one of cron, every or times (schedule %)', coalesce(quote_literal(new.name), 'without a name')
      using errcode = 'check_violation', hint = 'set the other two to null';
  end if;
  derived := case when new.cron is not null then 'cron' when new.every is not null then 'every' else 'times' end;
  -- A kind written by hand must agree; left out (or unchanged by an UPDATE), it follows the column.
  if new.kind is not null and new.kind <> derived and (tg_op = 'INSERT' or new.kind is distinct from old.kind) then
    raise exception 'schedules: kind % does not match the trigger given (%); leave kind out, the database derives it', quote_literal(new.kind), derived
      using errcode = 'check_violation';
  end if;
  new.kind := derived;

  if derived = 'every' then
    m := regexp_match(new.every, '^\s*(\d{1,7})(s|m|h|d|w|mo)\s*$');
    seconds := case when m is null then null
      else m[1]::bigint * case m[2] when 's' then 1 when 'm' then 60 when 'h' then 3600 when 'd' then 86400 when 'w' then 604800 else 2592000 end end;
    if seconds is null or seconds < 1 or seconds > 2592000 then
      raise exception 'schedules: every % is not an interval like 30s, 5m, 1h, 1d (a number and s, m, h, d, w or mo, from 1s to 1mo)', quote_literal(new.every)
        using errcode = 'check_violation';
    end if;
    new.every := m[1] || m[2];
    new.every_seconds := seconds;
  else
    new.every_seconds := null;
  end if;

  if derived = 'cron' then
    new.cron := regexp_replace(btrim(new.cron), '\s+', ' ', 'g');
    fields := cardinality(string_to_array(new.cron, ' '));
    if new.cron = '' or fields not in (5, 6) then
      raise exception 'schedules: cron % has % fields; give 5 (minute hour day month weekday) or 6 (seconds first), like ''*/5 * * * *''',
        quote_literal(new.cron), case when new.cron = '' then 0 else fields end
        using errcode = 'check_violation';
    end if;
  end if;

  if derived = 'times' then
    if cardinality(new.times) not between 1 and 100 then
      raise exception 'schedules: times must list 1 to 100 times of day, like ''{09:00,18:00}''' using errcode = 'check_violation';
    end if;
    select string_agg(quote_literal(coalesce(x, 'null')), ', ') into known
    from unnest(new.times) x where x is null or x !~ '^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$';
    if known is not null then
      raise exception 'schedules: times % must be HH:MM or HH:MM:SS (24-hour), like ''09:00''', known using errcode = 'check_violation';
    end if;
    new.times := array(select distinct x from unnest(new.times) x order by 1);
  end if;

  if tg_op = 'INSERT' or new.timezone is distinct from old.timezone then
    begin
      perform now() at time zone new.timezone;
    exception when invalid_parameter_value then
      raise exception 'schedules: timezone % is not a time zone, like ''Asia/Seoul'' or ''UTC''', quote_literal(new.timezone)
        using errcode = 'check_violation';
    end;
  end if;

  -- Job types are pg-boss queues (npm run migrate makes one per type); before pg-boss is
  -- installed there is nothing to check against.
  if (tg_op = 'INSERT' or new.job is distinct from old.job) and to_regclass('pgboss.queue') is not null then
    execute 'select string_agg(name, '', '' order by name), bool_or(name = $1) from pgboss.queue'
      into known, found_job using new.job;
    if known is not null and found_job is not true then
      raise exception 'schedules: job % is not a job type; one of %', quote_literal(new.job), known using errcode = 'check_violation';
    end if;
  end if;

  if jsonb_typeof(new.params) is distinct from 'object' then
    raise exception 'schedules: params must be a JSON object, like ''{}''' using errcode = 'check_violation';
  end if;
  return new;
end $$;

-- Named to fire before schedules_bump_version (triggers fire in name order), so the
-- version compares the derived row. Before-row triggers run before NOT NULL and CHECK
-- constraints are tested, so a row that leaves kind out is completed in time.
create trigger schedules_0_derive before insert or update of job, kind, cron, every, every_seconds, times, timezone, params on wombat.schedules
  for each row execute function wombat.schedules_derive();
