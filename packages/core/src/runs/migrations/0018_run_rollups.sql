-- Roll-ups of wombat.runs (run lifecycle, packages/core/src/runs/run-counts.ts).
-- Statement-level triggers on wombat.runs turn every change, by whichever writer,
-- into per-key deltas: one row per (kind, minute, job, state, bucket) a statement
-- changed, however many runs it touched. Deltas are only inserted (many workers
-- finishing runs of one job in one minute never wait on each other's row); one
-- engine at a time folds them into wombat.run_counts. A read is run_counts plus
-- the unfolded deltas, in one statement (one snapshot), so it equals count(*)
-- over wombat.runs at every instant.
--
-- kinds (minutes and hours are UTC ones, counted from the epoch):
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

-- The keys a group of like runs counts under. The triggers first group a statement's rows by
-- what the keys need (cheap arithmetic per row: whole UTC minutes since the epoch), then expand
-- each group here, so the costlier work is done per group, not per run. n and the sums carry
-- the group's sign (+ for rows added, - for rows removed).
create function wombat.run_count_keys(g_job text, g_state text, created_min bigint, finished_min bigint, duration_bucket smallint,
  dead boolean, lateness_bucket smallint, g_n bigint, g_duration_s double precision, lateness_s double precision, deleting boolean)
returns table (kind text, minute timestamptz, job text, state text, bucket smallint, n bigint, duration_s double precision)
language sql immutable parallel safe as $$
  select k.kind, k.minute, $1, $2, k.bucket, $8, k.seconds
  from (values
    ('created', to_timestamp($3 * 60), 0::smallint, 0::float8, true),
    ('created_hourly', to_timestamp($3 / 60 * 3600), 0::smallint, 0::float8, true),
    ('current', '-infinity'::timestamptz, 0::smallint, 0::float8, true),
    ('finished', to_timestamp($4 * 60), $5, $9, $4 is not null),
    ('finished_total', '-infinity'::timestamptz, $5, $9, $4 is not null and not $11),
    ('dead_letters', '-infinity'::timestamptz, 0::smallint, 0::float8, $6),
    ('lateness_hourly', to_timestamp($3 / 60 * 3600), $7, $10, $7 is not null)
  ) k(kind, minute, bucket, seconds, counts)
  where k.counts
$$;

-- What each row of `moves` (sign, then the columns of wombat.runs) adds, grouped, as one
-- delta row per key. Written once
-- over a relation each trigger names differently, so the triggers share it as text and run
-- it themselves (a statement's transition tables are visible to its trigger function only).
create function wombat.run_count_deltas_sql(moves text, deleting boolean) returns text language sql immutable as $f$
  select format($q$
    insert into wombat.run_count_deltas (kind, minute, job, state, bucket, n, duration_s)
    select k.kind, k.minute, k.job, k.state, k.bucket, sum(k.n), sum(k.duration_s)
    from (
      select m.job, m.state,
        floor(extract(epoch from m.created_at) / 60)::bigint as created_min,
        floor(extract(epoch from m.finished_at) / 60)::bigint as finished_min,
        wombat.run_duration_bucket(greatest(extract(epoch from m.finished_at - m.started_at), 0)::float8) as duration_bucket,
        m.state = 'failed' and m.requeued_as is null as dead,
        case when m.trigger = 'schedule' and m.started_at is not null and m.scheduled_for is not null
          then wombat.run_lateness_bucket((extract(epoch from m.started_at - m.scheduled_for) * 1000)::float8) end as lateness_bucket,
        sum(m.sign)::bigint as n,
        coalesce(sum(m.sign * greatest(extract(epoch from m.finished_at - m.started_at), 0)), 0)::float8 as duration_s,
        coalesce(sum(m.sign * extract(epoch from m.started_at - m.scheduled_for)) filter (where m.trigger = 'schedule'), 0)::float8 as lateness_s
      from (%s) m
      group by 1, 2, 3, 4, 5, 6, 7
    ) g
    cross join lateral wombat.run_count_keys(g.job, g.state, g.created_min, g.finished_min, g.duration_bucket, g.dead, g.lateness_bucket,
      g.n, g.duration_s, g.lateness_s, %L) k
    group by 1, 2, 3, 4, 5
    having sum(k.n) <> 0 or sum(k.duration_s) <> 0$q$, moves, deleting)
$f$;

create function wombat.run_counts_inserted() returns trigger language plpgsql as $$
begin
  execute wombat.run_count_deltas_sql('select 1 as sign, * from new_rows', false);
  return null;
end $$;

create function wombat.run_counts_deleted() returns trigger language plpgsql as $$
begin
  execute wombat.run_count_deltas_sql('select -1 as sign, * from old_rows', true);
  return null;
end $$;

-- Only runs whose keys changed count: progress writes and heartbeats add nothing.
create function wombat.run_counts_updated() returns trigger language plpgsql as $$
begin
  execute wombat.run_count_deltas_sql(format('select 1 as sign, n.* %1$s union all select -1, o.* %1$s',
    'from old_rows o join new_rows n on n.id = o.id
     where (o.job, o.state, o.created_at, o.started_at, o.finished_at, o.requeued_as is null, o.trigger, o.scheduled_for)
       is distinct from (n.job, n.state, n.created_at, n.started_at, n.finished_at, n.requeued_as is null, n.trigger, n.scheduled_for)'), false);
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

-- The runs already recorded, as the insert trigger would have counted them, then folded.
create temporary table new_rows on commit drop as select * from wombat.runs;
do $$ begin execute wombat.run_count_deltas_sql('select 1 as sign, * from new_rows', false); end $$;
insert into wombat.run_counts select * from wombat.run_count_deltas;
delete from wombat.run_count_deltas;

-- The reconciler's sweep of queued runs, a slice per round oldest first (reconcile.ts):
-- a round reads its slice, however many runs are queued.
create index runs_queued on wombat.runs (created_at, id) where state = 'queued';

-- The api's data series (services/api/src/data-series.ts): each series' latest finished
-- fetch-candles run, found by skipping from series to series, not by reading every run.
create index runs_fetch_candles_series on wombat.runs ((params->>'exchange'), (params->>'symbol'), (params->>'timeframe'), finished_at desc nulls last)
  where job = 'fetch-candles' and state in ('completed', 'failed')
    and params->>'exchange' is not null and params->>'symbol' is not null and params->>'timeframe' is not null;
