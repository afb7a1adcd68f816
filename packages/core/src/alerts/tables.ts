import type { ColumnType, Generated } from 'kysely';
import type { GeneratedTimestamp, Timestamp } from '../platform/db-types.ts';
import type { AlertMessage, ChannelName, DeliveryEvent, DeliveryState, Severity } from './types.ts';

/**
 * wombat.alerts, wombat.alert_deliveries and wombat.alert_counters
 * (migrations/0008_alerts.sql, which also gives wombat.schedules its
 * alert_stale_factor). store.ts is their only writer.
 */
export interface AlertsTable {
  id: Generated<number>;
  key: string;
  kind: string;
  severity: Severity;
  state: 'open' | 'resolved';
  subject: string;
  message: string;
  details: ColumnType<unknown, unknown, unknown>;
  opened_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
  clear_since: Timestamp | null;
  resolved_at: Timestamp | null;
  last_notified_at: Timestamp | null;
  notified_severity: Severity | null;
  notifications: Generated<number>;
}

export interface AlertDeliveriesTable {
  id: Generated<number>;
  alert_id: number;
  channel: ChannelName;
  event: DeliveryEvent;
  payload: ColumnType<AlertMessage, AlertMessage, AlertMessage>;
  state: Generated<DeliveryState>;
  attempts: Generated<number>;
  next_attempt_at: GeneratedTimestamp;
  lease_until: Timestamp | null;
  last_error: string | null;
  response: string | null;
  created_at: GeneratedTimestamp;
  sent_at: Timestamp | null;
}

/** Monotonic counts for Prometheus counters: alert rows are purged, these never are. */
export interface AlertCountersTable {
  name: string;
  label: string;
  value: Generated<number>;
}

/** wombat.database_size_samples (migrations/0013_database_size_samples.sql): one row per day. */
export interface DatabaseSizeSamplesTable {
  day: string;
  bytes: ColumnType<string, number, number>;
  sampled_at: GeneratedTimestamp;
}

export interface AlertTables {
  'wombat.alerts': AlertsTable;
  'wombat.alert_deliveries': AlertDeliveriesTable;
  'wombat.alert_counters': AlertCountersTable;
  'wombat.database_size_samples': DatabaseSizeSamplesTable;
}
