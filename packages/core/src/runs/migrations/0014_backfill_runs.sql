-- Backfills: a parent run (trigger backfill, no job of its own) with a child run per
-- occurrence of its schedule in a past range. Children carry the schedule and their
-- occurrence instant (schedule_id, scheduled_for); they are not the schedule's own
-- occurrences, so the unique index on (schedule_id, scheduled_for) for trigger
-- 'schedule' does not cover them and a range can be backfilled again.
alter table wombat.runs drop constraint runs_trigger_check;
alter table wombat.runs add constraint runs_trigger_check
  check (trigger in ('schedule', 'manual', 'task', 'script', 'fanout', 'cli', 'backfill'));
-- The backfill release pass looks up the unfinished parents and their children's states.
create index runs_backfill_parents on wombat.runs (created_at) where trigger = 'backfill' and parent_id is null and state in ('held', 'running');
