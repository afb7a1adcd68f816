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

-- One call applies a batch of attempt updates. The runs are locked first, in id
-- order: the reconciler holds a run's row while it fails that run's job, so once
-- this function holds the rows, its next statement (a fresh snapshot under read
-- committed) sees every job as it was settled. Returns the runs whose write was
-- refused: 'cancelled' (a start on a run the api cancelled) or 'superseded'.
create function wombat.apply_attempt_updates(updates jsonb, async_commit boolean)
returns table (id uuid, outcome text)
language plpgsql as $$
#variable_conflict use_column
begin
  if async_commit then
    perform set_config('synchronous_commit', 'off', true);
  end if;
  perform 1 from wombat.runs r
    where r.id in (select (e ->> 'id')::uuid from jsonb_array_elements(updates) e)
    order by r.id
    for update;
  return query
  with v as (
    select * from jsonb_to_recordset(updates) as v(
      id uuid, attempts int, state text, worker_id uuid, attempt_started_at timestamptz, progress float8, set_message boolean,
      progress_message text, result jsonb, error jsonb, finished_at timestamptz)
  ), c as (
    select v.*, r.state as run_state,
      coalesce(r.state <> 'cancelled' and v.attempts >= r.attempts and j.retry_count = v.attempts - 1
        and (j.state = 'active'
          or (v.state = 'completed' and j.state = 'completed')
          or (v.state = 'failed' and j.state = 'failed')
          or (v.state = 'retrying' and j.state in ('retry', 'created')))
        and (v.state = 'running' or v.worker_id is null or r.worker_id is null or r.worker_id = v.worker_id), false) as live
    from v
    join wombat.runs r on r.id = v.id
    left join pgboss.job j on j.name = r.job and j.id = r.id
  ), moved as (
    update wombat.runs r set
      state = coalesce(c.state, r.state),
      attempts = c.attempts,
      worker_id = coalesce(c.worker_id, r.worker_id),
      started_at = coalesce(r.started_at, c.attempt_started_at),
      progress = case when c.state = 'completed' then 1 else coalesce(c.progress, r.progress) end,
      progress_message = case when c.set_message then c.progress_message else r.progress_message end,
      result = case
        when r.job = 'canary' and c.state = 'completed' then coalesce(c.result, '{}'::jsonb) || jsonb_build_object(
          'latencyMs', round((extract(epoch from c.attempt_started_at - coalesce(r.scheduled_for, r.published_at, r.created_at)) * 1000)::numeric, 3))
        else coalesce(c.result, r.result) end,
      error = coalesce(c.error, r.error),
      finished_at = case when c.state in ('completed', 'failed') then c.finished_at else r.finished_at end,
      updated_at = now()
    from c
    where r.id = c.id and c.live
    returning r.id
  ), kept as (
    insert into wombat.superseded_attempts (run_id, attempt, state, worker_id, result, error)
    select c.id, c.attempts, c.state, c.worker_id, c.result, c.error from c
    where not c.live and c.run_state <> 'cancelled' and c.state is not null
    on conflict do nothing
    returning run_id
  )
  select c.id, 'cancelled'::text from c where c.state = 'running' and c.run_state = 'cancelled'
  union all
  select c.id, 'superseded'::text from c where not c.live and c.run_state <> 'cancelled';
end
$$;
