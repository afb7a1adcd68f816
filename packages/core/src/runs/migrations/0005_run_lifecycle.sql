-- The run lifecycle (packages/core/src/run-lifecycle) owns wombat.runs. Its state
-- list is RUN_STATES there; a test compares this constraint with it.
-- held: recorded by overlap queue-one, no job yet (was queued + no published_at).
-- retrying: an attempt failed or was lost and pg-boss will run the job again.
alter table wombat.runs drop constraint runs_state_check;
alter table wombat.runs drop constraint runs_trigger_check;
update wombat.runs set state = 'held' where state = 'queued' and published_at is null and trigger = 'schedule';
update wombat.runs set state = 'retrying' where state = 'queued' and attempts > 0;
alter table wombat.runs add constraint runs_state_check
  check (state in ('held', 'queued', 'running', 'retrying', 'completed', 'failed', 'cancelled', 'skipped', 'missed'));
alter table wombat.runs add constraint runs_trigger_check
  check (trigger in ('schedule', 'manual', 'task', 'script', 'fanout', 'cli'));

-- The worker process that runs the current attempt: the reconciler ends runs whose worker went silent.
alter table wombat.runs add column worker_id uuid;

drop index wombat.runs_active;
create index runs_active on wombat.runs (state) where state in ('held', 'queued', 'running', 'retrying');
drop index wombat.runs_schedule_active;
create index runs_schedule_active on wombat.runs (schedule_id)
  where state in ('held', 'queued', 'running', 'retrying') and schedule_id is not null;

-- One heartbeat row per worker process. Live: stopped_at is null and
-- last_beat_at > now() - 3 * heartbeat_interval_ms (as wombat.engines).
create table wombat.workers (
  id uuid primary key,
  host text not null,
  pid integer not null,
  version text not null,
  queues text[] not null,
  concurrency integer not null,
  started_at timestamptz not null default now(),
  last_beat_at timestamptz not null default now(),
  heartbeat_interval_ms integer not null,
  runs_in_hand integer not null default 0,
  rss_bytes bigint not null default 0,
  stopped_at timestamptz
);
create index workers_last_beat on wombat.workers (last_beat_at desc);
