/**
 * Warning and critical levels of the figures operators watch, shared by the
 * dashboard's colours, the metrics and the alerts so that all three agree.
 * Defaults are the operations playbook's: queue length 0-10 normal, 10-50
 * warning, > 50 critical; failure rate < 5 % / 5-10 % / > 10 %; average run time
 * < 300 s / 300-600 s / > 600 s; dead letters < 5 / 5-20 / > 20; live workers per
 * queue >= 2 normal, 1 warning, 0 critical; database connections 80 % / 95 % of
 * max_connections; oldest open transaction 10 min / 1 h; dead rows of a hot table
 * 20 % / 50 %; file systems 85 % / 95 % full.
 */
export type Level = 'ok' | 'warning' | 'critical';

export interface Threshold {
  warning: number;
  critical: number;
  /** 'above': larger values are worse (queue length); 'below': smaller values are worse (live workers). */
  worse: 'above' | 'below';
}

export const THRESHOLD_NAMES = ['queueDepth', 'failureRatio', 'avgRunSeconds', 'deadLetters', 'liveWorkers', 'dbConnections', 'transactionAge', 'deadRows', 'diskUsed'] as const;
export type ThresholdName = (typeof THRESHOLD_NAMES)[number];
export type Thresholds = Record<ThresholdName, Threshold>;

export const DEFAULT_THRESHOLDS: Thresholds = {
  queueDepth: { warning: 10, critical: 50, worse: 'above' },
  failureRatio: { warning: 0.05, critical: 0.1, worse: 'above' },
  avgRunSeconds: { warning: 300, critical: 600, worse: 'above' },
  deadLetters: { warning: 5, critical: 20, worse: 'above' },
  liveWorkers: { warning: 1, critical: 0, worse: 'below' },
  dbConnections: { warning: 0.8, critical: 0.95, worse: 'above' },
  transactionAge: { warning: 600, critical: 3600, worse: 'above' },
  deadRows: { warning: 0.2, critical: 0.5, worse: 'above' },
  diskUsed: { warning: 0.85, critical: 0.95, worse: 'above' },
};

/**
 * The level of a figure, by the alerts' rule: 'above': warning past `warning`,
 * critical past `critical` (10 queued jobs are normal, 11 warn, 51 are critical);
 * 'below': warning at or under `warning`, critical at or under `critical`.
 */
export function levelOf(value: number, t: Threshold): Level {
  if (t.worse === 'above') {
    if (value > t.critical) return 'critical';
    if (value > t.warning) return 'warning';
    return 'ok';
  }
  if (value <= t.critical) return 'critical';
  if (value <= t.warning) return 'warning';
  return 'ok';
}

/** The alert thresholds (ALERT_* settings of the engine, read by the api too) as the levels the dashboard colours by. */
export function thresholdsFromAlertSettings(c: {
  alertQueueLengthWarning: number;
  alertQueueLengthCritical: number;
  alertFailureRateWarningPct: number;
  alertFailureRateCriticalPct: number;
  alertRunTimeWarningSeconds: number;
  alertRunTimeCriticalSeconds: number;
  alertDeadLettersWarning: number;
  alertDeadLettersCritical: number;
  alertWorkersWarning: number;
  alertWorkersCritical: number;
  alertDbConnectionsWarningPct: number;
  alertDbConnectionsCriticalPct: number;
  alertTransactionAgeWarningSeconds: number;
  alertTransactionAgeCriticalSeconds: number;
  alertDeadRowsWarningPct: number;
  alertDeadRowsCriticalPct: number;
  alertDiskWarningPct: number;
  alertDiskCriticalPct: number;
}): Thresholds {
  return {
    queueDepth: { warning: c.alertQueueLengthWarning, critical: c.alertQueueLengthCritical, worse: 'above' },
    failureRatio: { warning: c.alertFailureRateWarningPct / 100, critical: c.alertFailureRateCriticalPct / 100, worse: 'above' },
    avgRunSeconds: { warning: c.alertRunTimeWarningSeconds, critical: c.alertRunTimeCriticalSeconds, worse: 'above' },
    deadLetters: { warning: c.alertDeadLettersWarning, critical: c.alertDeadLettersCritical, worse: 'above' },
    liveWorkers: { warning: c.alertWorkersWarning, critical: c.alertWorkersCritical, worse: 'below' },
    dbConnections: { warning: c.alertDbConnectionsWarningPct / 100, critical: c.alertDbConnectionsCriticalPct / 100, worse: 'above' },
    transactionAge: { warning: c.alertTransactionAgeWarningSeconds, critical: c.alertTransactionAgeCriticalSeconds, worse: 'above' },
    deadRows: { warning: c.alertDeadRowsWarningPct / 100, critical: c.alertDeadRowsCriticalPct / 100, worse: 'above' },
    diskUsed: { warning: c.alertDiskWarningPct / 100, critical: c.alertDiskCriticalPct / 100, worse: 'above' },
  };
}
