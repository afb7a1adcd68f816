-- Schedules the engine publishes: built-in ones (upserted by the engine at start,
-- keyed by name) and ones created through the api or plain SQL.
create table wombat.schedules (
  id bigint generated always as identity primary key,
  name text not null unique,
  job text not null,
  kind text not null check (kind in ('cron', 'every', 'times')),
  cron text,
  every text,
  every_seconds integer check (every_seconds between 1 and 2592000),
  times text[],
  timezone text not null default 'UTC',
  params jsonb not null default '{}',
  overlap text not null default 'skip' check (overlap in ('allow', 'skip', 'queue-one')),
  missed text not null default 'once' check (missed in ('skip', 'once', 'all')),
  catchup_window_seconds integer not null default 86400 check (catchup_window_seconds >= 0),
  catchup_max integer not null default 10 check (catchup_max >= 1),
  jitter_seconds integer not null default 0 check (jitter_seconds >= 0),
  timeout_seconds integer check (timeout_seconds >= 1),
  max_retries integer check (max_retries >= 0),
  retry_delay_seconds integer check (retry_delay_seconds >= 0),
  retry_backoff boolean,
  status text not null default 'active' check (status in ('active', 'paused')),
  paused_reason text,
  built_in boolean not null default false,
  version integer not null default 1,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- Kept by the engine: bookkeeping, never a definition change.
  next_run_at timestamptz,
  last_run_at timestamptz,
  last_run_id uuid,
  constraint schedules_trigger check (
    (kind = 'cron' and cron is not null and every is null and times is null)
    or (kind = 'every' and every is not null and every_seconds is not null and cron is null and times is null)
    or (kind = 'times' and cardinality(times) > 0 and cron is null and every is null)
  )
);

-- A definition or status edit (by the api or by hand in SQL) bumps version and
-- updated_at; the engine's own bookkeeping columns do not.
create function wombat.schedules_bump_version() returns trigger language plpgsql as $$
begin
  if (new.name, new.job, new.kind, new.cron, new.every, new.every_seconds, new.times, new.timezone, new.params,
      new.overlap, new.missed, new.catchup_window_seconds, new.catchup_max, new.jitter_seconds, new.timeout_seconds,
      new.max_retries, new.retry_delay_seconds, new.retry_backoff, new.status, new.paused_reason)
     is distinct from
     (old.name, old.job, old.kind, old.cron, old.every, old.every_seconds, old.times, old.timezone, old.params,
      old.overlap, old.missed, old.catchup_window_seconds, old.catchup_max, old.jitter_seconds, old.timeout_seconds,
      old.max_retries, old.retry_delay_seconds, old.retry_backoff, old.status, old.paused_reason) then
    new.version := old.version + 1;
    new.updated_at := now();
  end if;
  return new;
end $$;

create trigger schedules_bump_version before update on wombat.schedules
  for each row execute function wombat.schedules_bump_version();

-- Engines follow changes without a restart. The WHEN clause keeps the engine's
-- bookkeeping updates (thousands a second under load) from notifying anyone.
create function wombat.schedules_notify() returns trigger language plpgsql as $$
begin
  perform pg_notify('wombat_schedules', coalesce(new.id, old.id)::text);
  return null;
end $$;

create trigger schedules_notify_insert_delete after insert or delete on wombat.schedules
  for each row execute function wombat.schedules_notify();
create trigger schedules_notify_update after update on wombat.schedules
  for each row when (old.version is distinct from new.version) execute function wombat.schedules_notify();

-- One heartbeat row per engine process.
create table wombat.engines (
  id uuid primary key,
  host text not null,
  pid integer not null,
  version text not null,
  started_at timestamptz not null default now(),
  last_beat_at timestamptz not null default now(),
  heartbeat_interval_ms integer not null,
  enabled boolean not null,
  stopped_at timestamptz
);

-- The overlap check looks for a schedule's unfinished runs on every publication.
create index runs_schedule_active on wombat.runs (schedule_id) where state in ('queued', 'running') and schedule_id is not null;
-- Retention deletes finished runs oldest first.
create index runs_finished on wombat.runs (finished_at) where finished_at is not null;
