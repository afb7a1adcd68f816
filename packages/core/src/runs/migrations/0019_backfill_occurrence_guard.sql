-- One unfinished backfill child per occurrence of a schedule: two backfills of the same range
-- started together (each planning before the other recorded its children) would otherwise
-- both run it. A child that ended leaves the index, so a range can be backfilled again.
create unique index runs_backfill_occurrence_active on wombat.runs (schedule_id, scheduled_for)
  where trigger = 'backfill' and parent_id is not null and state in ('waiting', 'held', 'queued', 'running', 'retrying');
