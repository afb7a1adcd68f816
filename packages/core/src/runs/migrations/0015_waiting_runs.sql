-- waiting: an occurrence of a schedule with prerequisites (schedules.after), recorded
-- without a job until the prerequisites' runs for its period have completed. Active, like
-- held: the partial indexes of unfinished runs list it.
alter table wombat.runs drop constraint runs_state_check;
alter table wombat.runs add constraint runs_state_check
  check (state in ('waiting', 'held', 'queued', 'running', 'retrying', 'completed', 'failed', 'cancelled', 'skipped', 'missed'));

drop index wombat.runs_active;
create index runs_active on wombat.runs (state) where state in ('waiting', 'held', 'queued', 'running', 'retrying');
drop index wombat.runs_schedule_active;
create index runs_schedule_active on wombat.runs (schedule_id)
  where state in ('waiting', 'held', 'queued', 'running', 'retrying') and schedule_id is not null;

-- A waiting run looks up its prerequisites' latest run in its period (by scheduled_for).
create index runs_schedule_scheduled_for on wombat.runs (schedule_id, scheduled_for desc) where schedule_id is not null and parent_id is null;
