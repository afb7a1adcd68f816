-- Roll-ups of wombat.runs (run lifecycle, packages/core/src/runs/run-counts.ts).
-- Statement-level triggers on wombat.runs turn every change, by whichever writer,
-- into per-key deltas: one row per (kind, minute, job, state, bucket) a statement
-- changed, however many runs it touched. Deltas are only inserted (many workers
-- finishing runs of one job in one minute never wait on each other's row); one
-- engine at a time folds them into wombat.run_counts. A read is run_counts plus
-- the unfolded deltas, in one statement (one snapshot), so it equals count(*)
-- over wombat.runs at every instant.
--
-- kinds:
--   created        minute = created_at's minute: runs created then, by their current state
--   created_hourly minute = created_at's hour: the same by hour (a day's counts are 24 rows
--                  a key, plus the minutes of the hour the day starts in)
--   current        minute = -infinity: runs now in each state
--   finished       minute = finished_at's minute: runs with a finished_at, by state and duration bucket
--   finished_total minute = -infinity: as finished, but a delete does not subtract (a
--                  Prometheus counter: retention must not make it fall)
--   dead_letters   minute = -infinity: failed runs not yet requeued
--   lateness_hourly minute = created_at's hour: scheduled runs that started, by start
--                  lateness bucket (wombat.run_lateness_bucket); duration_s sums the lateness
-- bucket: wombat.run_duration_bucket(finished_at - started_at), -1 without a start; 0 for
-- the kinds without durations. duration_s: sum of the durations of started runs.
-- Deletes (retention, purges) subtract from every kind but finished_total: a deleted
-- run's minutes are long outside every window, and what is left equals count(*).

create table wombat.run_count_deltas (
  kind text not null,
  minute timestamptz not null,
  job text not null,
  state text not null,
  bucket smallint not null,
  n bigint not null,
  duration_s double precision not null
);

create table wombat.run_counts (
  like wombat.run_count_deltas,
  primary key (kind, minute, job, state, bucket)
);

-- The upper bounds of the api's run duration histogram (DURATION_BUCKETS_SECONDS, a test
-- compares them): the index of the first bound d is at most, 13 above the last.
create function wombat.run_duration_bucket(d double precision) returns smallint
language sql immutable parallel safe as $$
  select (case when d is null then -1
    when d <= 0.01 then 0 when d <= 0.05 then 1 when d <= 0.1 then 2 when d <= 0.5 then 3
    when d <= 1 then 4 when d <= 5 then 5 when d <= 10 then 6 when d <= 30 then 7
    when d <= 60 then 8 when d <= 300 then 9 when d <= 900 then 10 when d <= 1800 then 11
    when d <= 3600 then 12 else 13 end)::smallint
$$;

-- Start lateness (started_at - scheduled_for) buckets 5% wide: bucket b holds lateness in
-- (1.05^(b-1), 1.05^b] ms, 0 at most 1 ms; a percentile read from them is within 5%.
create function wombat.run_lateness_bucket(ms double precision) returns smallint
language sql immutable parallel safe as $$
  select (case when ms <= 1 then 0 else least(ceil(ln(ms) / ln(1.05)), 30000) end)::smallint
$$;

-- The keys one run counts under.
create function wombat.run_count_keys(r_state text, r_created_at timestamptz, r_started_at timestamptz, r_finished_at timestamptz, r_requeued_as uuid,
  r_trigger text, r_scheduled_for timestamptz)
returns table (kind text, minute timestamptz, state text, bucket smallint, duration_s double precision)
language sql stable parallel safe as $$
  select k.kind, k.minute, r_state, k.bucket, k.duration_s
  from (select case when r_started_at is not null and r_finished_at is not null
                    then greatest(extract(epoch from r_finished_at - r_started_at), 0)::float8 end as d) d
  cross join (select (extract(epoch from r_started_at - r_scheduled_for) * 1000)::float8 as ms) l
  cross join lateral (values
    ('created', date_trunc('minute', r_created_at), 0::smallint, 0::float8, true),
    ('created_hourly', date_trunc('hour', r_created_at), 0::smallint, 0::float8, true),
    ('current', '-infinity'::timestamptz, 0::smallint, 0::float8, true),
    ('finished', date_trunc('minute', r_finished_at), wombat.run_duration_bucket(d.d), coalesce(d.d, 0), r_finished_at is not null),
    ('finished_total', '-infinity'::timestamptz, wombat.run_duration_bucket(d.d), coalesce(d.d, 0), r_finished_at is not null),
    ('dead_letters', '-infinity'::timestamptz, 0::smallint, 0::float8, r_state = 'failed' and r_requeued_as is null),
    ('lateness_hourly', date_trunc('hour', r_created_at), wombat.run_lateness_bucket(l.ms), coalesce(l.ms / 1000, 0),
      r_trigger = 'schedule' and r_started_at is not null and r_scheduled_for is not null)
  ) k(kind, minute, bucket, duration_s, counts)
  where k.counts
$$;

create function wombat.run_counts_inserted() returns trigger language plpgsql as $$
begin
  insert into wombat.run_count_deltas (kind, minute, job, state, bucket, n, duration_s)
  select k.kind, k.minute, r.job, k.state, k.bucket, count(*), sum(k.duration_s)
  from new_rows r cross join lateral wombat.run_count_keys(r.state, r.created_at, r.started_at, r.finished_at, r.requeued_as, r.trigger, r.scheduled_for) k
  group by 1, 2, 3, 4, 5;
  return null;
end $$;

create function wombat.run_counts_deleted() returns trigger language plpgsql as $$
begin
  insert into wombat.run_count_deltas (kind, minute, job, state, bucket, n, duration_s)
  select k.kind, k.minute, r.job, k.state, k.bucket, -count(*), -sum(k.duration_s)
  from old_rows r cross join lateral wombat.run_count_keys(r.state, r.created_at, r.started_at, r.finished_at, r.requeued_as, r.trigger, r.scheduled_for) k
  where k.kind <> 'finished_total'
  group by 1, 2, 3, 4, 5;
  return null;
end $$;

-- Only runs whose keys changed count: progress writes and heartbeats add nothing.
create function wombat.run_counts_updated() returns trigger language plpgsql as $$
begin
  with changed as (
    select o.id from old_rows o join new_rows n on n.id = o.id
    where (o.job, o.state, o.created_at, o.started_at, o.finished_at, o.requeued_as is null, o.trigger, o.scheduled_for)
      is distinct from (n.job, n.state, n.created_at, n.started_at, n.finished_at, n.requeued_as is null, n.trigger, n.scheduled_for)
  ), moves as (
    select 1 as sign, r.job, r.state, r.created_at, r.started_at, r.finished_at, r.requeued_as, r.trigger, r.scheduled_for from new_rows r where r.id in (select id from changed)
    union all
    select -1, r.job, r.state, r.created_at, r.started_at, r.finished_at, r.requeued_as, r.trigger, r.scheduled_for from old_rows r where r.id in (select id from changed)
  )
  insert into wombat.run_count_deltas (kind, minute, job, state, bucket, n, duration_s)
  select k.kind, k.minute, m.job, k.state, k.bucket, sum(m.sign), sum(m.sign * k.duration_s)
  from moves m cross join lateral wombat.run_count_keys(m.state, m.created_at, m.started_at, m.finished_at, m.requeued_as, m.trigger, m.scheduled_for) k
  group by 1, 2, 3, 4, 5
  having sum(m.sign) <> 0 or sum(m.sign * k.duration_s) <> 0;
  return null;
end $$;

create function wombat.run_counts_truncated() returns trigger language plpgsql as $$
begin
  delete from wombat.run_count_deltas;
  delete from wombat.run_counts;
  return null;
end $$;

create trigger runs_count_inserts after insert on wombat.runs
  referencing new table as new_rows for each statement execute function wombat.run_counts_inserted();
create trigger runs_count_updates after update on wombat.runs
  referencing old table as old_rows new table as new_rows for each statement execute function wombat.run_counts_updated();
create trigger runs_count_deletes after delete on wombat.runs
  referencing old table as old_rows for each statement execute function wombat.run_counts_deleted();
create trigger runs_count_truncates after truncate on wombat.runs
  for each statement execute function wombat.run_counts_truncated();

-- The runs already recorded.
insert into wombat.run_counts (kind, minute, job, state, bucket, n, duration_s)
select k.kind, k.minute, r.job, k.state, k.bucket, count(*), sum(k.duration_s)
from wombat.runs r cross join lateral wombat.run_count_keys(r.state, r.created_at, r.started_at, r.finished_at, r.requeued_as, r.trigger, r.scheduled_for) k
group by 1, 2, 3, 4, 5;

-- The reconciler's sweep of queued runs, a slice per round oldest first (reconcile.ts):
-- a round reads its slice, however many runs are queued.
create index runs_queued on wombat.runs (created_at, id) where state = 'queued';
