/**
 * Alerts: conditions -> alerts (one evaluator at a time) -> outbox -> Slack, e-mail,
 * webhook; and the thresholds the dashboard, the metrics and the alerts share. Owns
 * wombat.alerts, alert_deliveries and alert_counters (written only by store.ts; DDL in
 * migrations/). Import as `@wombat/core/alerts`.
 */
export * from './tables.ts';
export * from './types.ts';
export * from './thresholds.ts';
export * from './config.ts';
export * from './channels.ts';
export * from './plan.ts';
export * from './conditions.ts';
export * from './database-health.ts';
export * from './store.ts';
export * from './report.ts';
export * from './service.ts';
