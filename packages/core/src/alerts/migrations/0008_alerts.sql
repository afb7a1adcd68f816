-- Alerts: one row per alert. An alert is identified by its key (the condition it
-- reports, e.g. 'run_failed:<run id>', 'queue_length:fetch-candles'); at most one
-- alert per key is open at a time. Written only by the alert evaluator (one at a
-- time, advisory lock) and, for test messages, by the api.
create table wombat.alerts (
  id bigint generated always as identity primary key,
  key text not null,
  kind text not null,
  severity text not null check (severity in ('info', 'warning', 'critical')),
  state text not null check (state in ('open', 'resolved')),
  subject text not null,
  message text not null,
  details jsonb not null default '{}',
  opened_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- Set while the condition is clear but not yet for long enough to resolve (flapping).
  clear_since timestamptz,
  resolved_at timestamptz,
  last_notified_at timestamptz,
  notified_severity text check (notified_severity in ('info', 'warning', 'critical')),
  notifications integer not null default 0
);
create unique index alerts_open_key on wombat.alerts (key) where state = 'open';
create index alerts_opened on wombat.alerts (opened_at desc);
create index alerts_key_opened on wombat.alerts (key, opened_at desc);

-- Outbox: one row per message per channel, written in the transaction that
-- opens, escalates or resolves the alert. Each channel is drained by its own
-- loop, so a slow or dead channel never holds up another.
create table wombat.alert_deliveries (
  id bigint generated always as identity primary key,
  alert_id bigint not null references wombat.alerts (id) on delete cascade,
  channel text not null check (channel in ('slack', 'email', 'webhook')),
  event text not null check (event in ('opened', 'escalated', 'repeated', 'resolved', 'report', 'test')),
  -- What is sent, fixed when the event happens (the alert row changes later).
  payload jsonb not null,
  state text not null default 'pending' check (state in ('pending', 'sending', 'sent', 'failed')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  -- A sender that died mid-send leaves 'sending'; another takes it over once the lease passes.
  lease_until timestamptz,
  last_error text,
  response text,
  created_at timestamptz not null default now(),
  sent_at timestamptz
);
create index alert_deliveries_due on wombat.alert_deliveries (channel, next_attempt_at) where state in ('pending', 'sending');
create index alert_deliveries_alert on wombat.alert_deliveries (alert_id);

-- Monotonic counts for Prometheus counters (alerts raised, deliveries sent and
-- failed): alert rows are purged, these never are.
create table wombat.alert_counters (
  name text not null,
  label text not null,
  value bigint not null default 0,
  primary key (name, label)
);

-- "Not succeeded for longer than expected interval x k", per schedule:
-- null = default (ALERT_STALE_FACTOR for built-in schedules, off for others), 0 = off.
alter table wombat.schedules add column alert_stale_factor double precision
  check (alert_stale_factor = 0 or alert_stale_factor >= 1);

-- ---------------------------------------------------------------------------
