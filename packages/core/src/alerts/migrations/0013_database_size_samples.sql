-- The database's size once per day (the latest sample of the day wins), so that
-- its growth per day can be shown and exported without scanning anything.
-- Written only by the alert evaluator (alerts/store.ts); kept 90 days.
create table wombat.database_size_samples (
  day date primary key,
  bytes bigint not null check (bytes >= 0),
  sampled_at timestamptz not null default now()
);
