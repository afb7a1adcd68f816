/** Alerts: conditions -> alerts (one evaluator at a time) -> outbox -> Slack, e-mail, webhook. Import as `@wombat/core/alerts`. */
export * from './types.ts';
export * from './config.ts';
export * from './channels.ts';
export * from './plan.ts';
export * from './conditions.ts';
export * from './store.ts';
export * from './report.ts';
export * from './service.ts';
