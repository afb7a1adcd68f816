-- A waiting run, or a backfill's child, looks up its prerequisites' latest run in its period,
-- and a backfill's children count as their schedule's runs of their occurrences: beside
-- runs_schedule_scheduled_for (parent_id is null), the planner can OR this one in.
create index runs_backfill_scheduled_for on wombat.runs (schedule_id, scheduled_for desc) where trigger = 'backfill' and parent_id is not null;
