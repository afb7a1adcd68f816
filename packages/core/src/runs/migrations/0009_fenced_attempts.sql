-- Fenced attempts (run lifecycle, packages/core/src/run-lifecycle/attempts.ts).
-- A worker's write to a run counts only while its attempt still holds the job's
-- claim in pg-boss: the job is active at that attempt's retry count, or ended the
-- way the write says (the worker settles its job right after writing). A write
-- from an attempt that was superseded (failed by the reconciler or pg-boss's
-- monitor, retried elsewhere, handed back) is refused and kept here instead,
-- never as the run's outcome.
create table wombat.superseded_attempts (
  run_id uuid not null,
  attempt integer not null,
  -- what the attempt tried to record: running, retrying, completed or failed
  state text not null,
  worker_id uuid,
  result jsonb,
  error jsonb,
  recorded_at timestamptz not null default now(),
  primary key (run_id, attempt, state)
);
create index superseded_attempts_recorded on wombat.superseded_attempts (recorded_at desc);
