-- Retry and requeue: a finished run is never run again in place; a new run with the
-- same job and params is published and the two are linked both ways, so a dead
-- letter leaves the dead-letter list once it has been requeued.
alter table wombat.runs add column retry_of uuid;
alter table wombat.runs add column requeued_as uuid;

-- Dead letters: final failures not yet requeued, newest first.
create index runs_dead_letters on wombat.runs (finished_at desc) where state = 'failed' and requeued_as is null;
create index runs_retry_of on wombat.runs (retry_of) where retry_of is not null;
