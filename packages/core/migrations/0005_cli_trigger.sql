-- Runs the `wombat run` command executes in its own process, without the queue,
-- are recorded with trigger 'cli'.
alter table wombat.runs drop constraint runs_trigger_check;
alter table wombat.runs add constraint runs_trigger_check
  check (trigger in ('schedule', 'manual', 'task', 'script', 'fanout', 'cli'));
