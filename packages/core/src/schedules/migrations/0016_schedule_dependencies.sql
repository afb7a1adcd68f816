-- Dependencies: a schedule may wait for others (after: their names) for up to
-- wait_for_seconds past each occurrence. The database refuses what the engine could not
-- follow, for the api, the CLI and plain SQL alike, with a message that says what to fix:
-- an unknown or own name, a prerequisite in another time zone, a cycle, and deleting or
-- renaming a schedule that others wait for.
alter table wombat.schedules add column after text[] not null default '{}';
alter table wombat.schedules add column wait_for_seconds integer not null default 3600
  constraint schedules_wait_for_seconds check (wait_for_seconds between 1 and 604800);

create function wombat.schedules_check_after() returns trigger language plpgsql as $$
declare
  bad text;
  waiting text;
begin
  -- One checker at a time: two edits that each close half of a cycle cannot both pass.
  perform pg_advisory_xact_lock(hashtext('wombat.schedules.after'));
  if tg_op = 'DELETE' or (tg_op = 'UPDATE' and new.name is distinct from old.name) then
    select string_agg(quote_literal(s.name), ', ' order by s.name) into waiting
    from wombat.schedules s where old.name = any(s.after) and s.id <> old.id;
    if waiting is not null then
      raise exception 'schedules: % is a prerequisite of % (after); remove it from their after first', quote_literal(old.name), waiting
        using errcode = 'check_violation';
    end if;
    if tg_op = 'DELETE' then return old; end if;
  end if;

  new.after := array(select distinct btrim(x) from unnest(new.after) x order by 1);
  if cardinality(new.after) = 0 then
    return new;
  end if;
  if new.name = any(new.after) then
    raise exception 'schedules: % cannot wait for itself (after)', quote_literal(new.name) using errcode = 'check_violation';
  end if;
  select string_agg(quote_literal(x), ', ' order by x) into bad
  from unnest(new.after) x where not exists (select 1 from wombat.schedules s where s.name = x);
  if bad is not null then
    raise exception 'schedules: after names % which is not a schedule; give the names of existing schedules', bad
      using errcode = 'check_violation';
  end if;
  select string_agg(format('%L (%s)', s.name, s.timezone), ', ' order by s.name) into bad
  from wombat.schedules s where s.name = any(new.after) and s.timezone <> new.timezone;
  if bad is not null then
    raise exception 'schedules: % is in time zone % but its prerequisites % are not; a schedule may only wait for schedules of its own time zone',
      quote_literal(new.name), new.timezone, bad using errcode = 'check_violation';
  end if;
  -- A path from a prerequisite back to this schedule closes a cycle.
  with recursive reach(name, path) as (
    select x, quote_literal(new.name) || ' -> ' || quote_literal(x) from unnest(new.after) x
    union
    select y, r.path || ' -> ' || quote_literal(y)
    from reach r join wombat.schedules s on s.name = r.name and s.id is distinct from new.id
    cross join unnest(s.after) y
    where r.name <> new.name and cardinality(string_to_array(r.path, ' -> ')) < 1000
  )
  select path into bad from reach where name = new.name limit 1;
  if bad is not null then
    raise exception 'schedules: after would make a cycle: %; remove one of these dependencies', bad using errcode = 'check_violation';
  end if;
  return new;
end $$;

-- Prerequisites in another zone cannot share a local day: a time zone edit of a
-- prerequisite is checked against the schedules that wait for it.
create function wombat.schedules_check_dependents() returns trigger language plpgsql as $$
declare
  bad text;
begin
  select string_agg(format('%L (%s)', s.name, s.timezone), ', ' order by s.name) into bad
  from wombat.schedules s where new.name = any(s.after) and s.timezone <> new.timezone and s.id <> new.id;
  if bad is not null then
    raise exception 'schedules: % waits for % (after) but % would move to time zone %; change them together or remove the dependency',
      bad, quote_literal(new.name), quote_literal(new.name), new.timezone using errcode = 'check_violation';
  end if;
  return new;
end $$;

create trigger schedules_1_after before insert or update of name, after, timezone on wombat.schedules
  for each row execute function wombat.schedules_check_after();
create trigger schedules_1_after_delete before delete on wombat.schedules
  for each row execute function wombat.schedules_check_after();
create trigger schedules_1_dependents before update of timezone on wombat.schedules
  for each row when (old.timezone is distinct from new.timezone) execute function wombat.schedules_check_dependents();

-- The new columns are part of the definition: an edit bumps version (and notifies the engines).
create or replace function wombat.schedules_bump_version() returns trigger language plpgsql as $$
begin
  if (new.name, new.job, new.kind, new.cron, new.every, new.every_seconds, new.times, new.timezone, new.params,
      new.overlap, new.missed, new.catchup_window_seconds, new.catchup_max, new.jitter_seconds, new.timeout_seconds,
      new.max_retries, new.retry_delay_seconds, new.retry_backoff, new.status, new.paused_reason, new.after, new.wait_for_seconds)
     is distinct from
     (old.name, old.job, old.kind, old.cron, old.every, old.every_seconds, old.times, old.timezone, old.params,
      old.overlap, old.missed, old.catchup_window_seconds, old.catchup_max, old.jitter_seconds, old.timeout_seconds,
      old.max_retries, old.retry_delay_seconds, old.retry_backoff, old.status, old.paused_reason, old.after, old.wait_for_seconds) then
    new.version := old.version + 1;
    new.updated_at := now();
  end if;
  return new;
end $$;
