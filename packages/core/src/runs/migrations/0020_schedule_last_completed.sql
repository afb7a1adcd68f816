-- Each schedule's latest completed run in one index probe: the stale-schedule alert and /metrics'
-- wombat_schedule_seconds_since_success read max(finished_at) here every round, so their cost stays
-- the same however long the schedule's history or its streak of failures and skips. Runs of no
-- schedule (tasks) never enter it.
create index runs_schedule_completed on wombat.runs (schedule_id, finished_at) where state = 'completed' and schedule_id is not null;
