-- Dead letters by the failed-runs alert's group: schedule (0 for none), job (for runs of no
-- schedule), error code, newest first. The alert steps from group to group through it (one probe
-- each) and reads at most a capped number of each group's entries, so its round costs the same
-- with ten dead letters or a million. Only runs failed for good and not requeued enter it.
create index runs_dead_letter_groups on wombat.runs (
  coalesce(schedule_id, 0), (case when schedule_id is null then job else '' end), coalesce(error->>'code', 'unknown'), finished_at desc, id)
  where state = 'failed' and requeued_as is null;
