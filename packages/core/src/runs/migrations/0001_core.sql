-- Wombat's own tables live in schema wombat; pg-boss keeps its own schema.
create schema if not exists wombat;

-- One row for every job Wombat creates, whoever created it, plus a row for every
-- schedule occurrence that was skipped or missed. The id equals the pg-boss job id.
create table wombat.runs (
  id uuid primary key,
  job text not null,
  trigger text not null check (trigger in ('schedule', 'manual', 'task', 'script', 'fanout')),
  schedule_id bigint,
  parent_id uuid,
  scheduled_for timestamptz,
  state text not null default 'queued'
    check (state in ('queued', 'running', 'completed', 'failed', 'cancelled', 'skipped', 'missed')),
  reason text,
  params jsonb not null default '{}',
  progress double precision not null default 0 check (progress >= 0 and progress <= 1),
  progress_message text,
  result jsonb,
  error jsonb,
  attempts integer not null default 0,
  created_at timestamptz not null default now(),
  published_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now()
);

-- Exactly once: an occurrence of a schedule is recorded at most once, whichever
-- engine gets there first. Manual triggers of a schedule are not occurrences.
create unique index runs_schedule_occurrence on wombat.runs (schedule_id, scheduled_for) where trigger = 'schedule';
create index runs_created on wombat.runs (created_at desc);
create index runs_job_created on wombat.runs (job, created_at desc);
create index runs_schedule_created on wombat.runs (schedule_id, created_at desc) where schedule_id is not null;
create index runs_parent on wombat.runs (parent_id) where parent_id is not null;
create index runs_active on wombat.runs (state) where state in ('queued', 'running');
