export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
export const severityRank = (s: Severity | null | undefined): number => (s ? SEVERITIES.indexOf(s) : -1);

export const CHANNEL_NAMES = ['slack', 'email', 'webhook'] as const;
export type ChannelName = (typeof CHANNEL_NAMES)[number];

export const DELIVERY_EVENTS = ['opened', 'escalated', 'repeated', 'resolved', 'report', 'test'] as const;
export type DeliveryEvent = (typeof DELIVERY_EVENTS)[number];

export const DELIVERY_STATES = ['pending', 'sending', 'sent', 'failed'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/**
 * What an alert is about. Run events (run_failed, run_lost) have one alert per
 * run; the others one per condition (per schedule, queue or job, or global).
 */
export const ALERT_KINDS = [
  'run_failed',
  'run_lost',
  'run_failed_burst',
  'occurrence_missed',
  'overlap_skipped',
  'dependency_skipped',
  'schedule_stale',
  'no_engine',
  'workers_low',
  'queue_length',
  'failure_rate',
  'run_time',
  'dead_letters',
  'db_connections',
  'transaction_age',
  'dead_rows',
  'disk_space',
  'daily_report',
  'collection_report',
  'test',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

/** A file sent with a message: e-mail attaches it, the webhook receives it in the JSON, Slack gets the text only. */
export interface Attachment {
  filename: string;
  content_type: string;
  content: string;
}

/** One message as every channel receives it (the generic webhook gets exactly this JSON). */
export interface AlertMessage {
  alert_id: number;
  key: string;
  kind: string;
  severity: Severity;
  event: DeliveryEvent;
  subject: string;
  message: string;
  details: unknown;
  opened_at: string;
  resolved_at: string | null;
  attachments?: Attachment[];
  /**
   * Stable id of this delivery (one channel's copy of one message), the same on every
   * attempt: delivery is at-least-once (a sender that dies after the channel accepted the
   * message, before recording it, sends it again once its lease passes), so a receiver drops
   * a repeat by this id. Webhook body field, e-mail Message-ID, Slack "ref".
   */
  delivery_id?: string;
}

/** A condition as the evaluator sees it now: it holds, at this severity, saying this. */
export interface Condition {
  key: string;
  kind: AlertKind;
  severity: Severity;
  subject: string;
  message: string;
  details: Record<string, unknown>;
  /** Files sent with the message (reports). */
  attachments?: Attachment[];
}
