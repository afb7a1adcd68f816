import { bool, int, list, optionalStr, str, timeOfDayOrOff, type ConfigOf, type Field } from '../platform/config.ts';

/**
 * Alert configuration. Channel fields are read by every process that sends (the
 * engine's delivery loops, the api's test message); the rest by the engine,
 * which evaluates. Defaults come from the operations playbook Wombat replaces.
 */

function number(env: string, doc: string, dflt: number, opts: { min: number; max: number }): Field<number> {
  return {
    env,
    doc,
    default: String(dflt),
    parse(raw) {
      const v = raw === undefined || raw.trim() === '' ? String(dflt) : raw.trim();
      const n = Number(v);
      if (!/^-?\d+(\.\d+)?$/.test(v) || n < opts.min || n > opts.max) throw new Error(`must be a number between ${opts.min} and ${opts.max}`);
      return n;
    },
  };
}

function url(env: string, doc: string, protocols: string[], example: string): Field<string | undefined> {
  const base = optionalStr(env, doc, { secret: true });
  return {
    ...base,
    parse(raw) {
      const v = base.parse(raw);
      if (v === undefined) return undefined;
      let u: URL;
      try {
        u = new URL(v);
      } catch {
        throw new Error(`must be a URL like ${example}`);
      }
      if (!protocols.includes(u.protocol)) throw new Error(`must be a URL like ${example} (${protocols.join(' or ')})`);
      return v;
    },
  };
}

function optionalList(env: string, doc: string): Field<string[]> {
  const parsed = list(env, doc);
  return { env, doc, parse: (raw) => (raw === undefined || raw.trim() === '' ? [] : parsed.parse(raw)) };
}

export const alertChannelFields = {
  slackWebhookUrl: url('SLACK_WEBHOOK_URL', 'Slack incoming webhook for alerts (secret); unset: no Slack messages', ['https:', 'http:'], 'https://hooks.slack.com/services/T000/B000/XXXX'),
  slackEnabled: bool('SLACK_ENABLED', 'false: keep SLACK_WEBHOOK_URL but send nothing to Slack', { default: true }),
  smtpUrl: url('SMTP_URL', 'SMTP server for alert e-mail, smtp(s)://user:password@host:port (secret); unset: no e-mail', ['smtp:', 'smtps:'], 'smtps://user:password@smtp.example.com:465'),
  alertEmailFrom: optionalStr('ALERT_EMAIL_FROM', 'sender address of alert e-mail (needed with SMTP_URL)'),
  alertEmailTo: optionalList('ALERT_EMAIL_TO', 'recipients of alert e-mail, comma-separated (needed with SMTP_URL)'),
  alertWebhookUrl: url('ALERT_WEBHOOK_URL', 'generic JSON webhook receiving every alert as a POST (secret); unset: none', ['https:', 'http:'], 'https://example.com/hooks/wombat'),
  alertChannelTimeoutMs: int('ALERT_CHANNEL_TIMEOUT_MS', 'a channel that has not answered within this many ms has failed this attempt', { default: 10_000, min: 100, max: 120_000 }),
  alertLinkBaseUrl: optionalStr('ALERT_LINK_BASE_URL', 'public URL of the api (e.g. https://wombat.example.com), used for links in alert messages'),
};

export const alertEvaluatorFields = {
  alertsEnabled: bool('ALERTS_ENABLED', 'false: this engine neither evaluates alerts nor delivers them', { default: true }),
  alertEvaluateIntervalMs: int('ALERT_EVALUATE_INTERVAL_MS', 'how often the alert conditions are evaluated (one engine at a time)', { default: 15_000, min: 100, max: 600_000 }),
  alertDeliverIntervalMs: int('ALERT_DELIVER_INTERVAL_MS', 'how often each channel looks for messages to send or retry', { default: 2_000, min: 50, max: 600_000 }),
  alertRetryBaseMs: int('ALERT_RETRY_BASE_MS', 'first retry delay of a failed delivery; doubles per attempt', { default: 15_000, min: 10, max: 3_600_000 }),
  alertRetryMaxMs: int('ALERT_RETRY_MAX_MS', 'longest delay between delivery retries', { default: 900_000, min: 10, max: 86_400_000 }),
  alertMaxAttempts: int('ALERT_MAX_ATTEMPTS', 'a delivery that failed this many times is given up (state failed)', { default: 10, min: 1, max: 1000 }),
  alertCooldownMs: int('ALERT_COOLDOWN_MS', 'least time between two messages about the same open alert (an escalation waits for it)', { default: 600_000, min: 0, max: 86_400_000 }),
  alertRepeatMs: int('ALERT_REPEAT_MS', 'an alert still open is sent again after this many ms (0: never)', { default: 14_400_000, min: 0, max: 604_800_000 }),
  alertResolveAfterMs: int('ALERT_RESOLVE_AFTER_MS', 'a condition must stay clear this long before its alert resolves (a flapping one stays one alert)', { default: 120_000, min: 0, max: 86_400_000 }),
  alertLookbackHours: int('ALERT_LOOKBACK_HOURS', 'failed, lost, missed and skipped runs younger than this raise alerts', { default: 24, min: 1, max: 720 }),
  alertRunBurst: int('ALERT_RUN_BURST', 'failed or lost runs found in one pass beyond this many are sent as one summary message (each still has its alert)', { default: 5, min: 1, max: 10_000 }),
  alertOverlapSkips: int('ALERT_OVERLAP_SKIPS', 'a schedule whose last N occurrences were skipped by overlap raises an alert', { default: 3, min: 1, max: 1000 }),
  alertStaleFactor: number('ALERT_STALE_FACTOR', 'a built-in schedule not succeeded for longer than its interval x this raises an alert (0: off; per schedule: wombat.schedules.alert_stale_factor)', 1.5, { min: 0, max: 1000 }),
  alertWorkersWarning: int('ALERT_WORKERS_WARNING', 'live workers for a queue at or below this: warning', { default: 1, min: 0, max: 1000 }),
  alertWorkersCritical: int('ALERT_WORKERS_CRITICAL', 'live workers for a queue at or below this: critical', { default: 0, min: 0, max: 1000 }),
  alertQueueLengthWarning: int('ALERT_QUEUE_LENGTH_WARNING', 'jobs waiting in a queue above this: warning', { default: 10, min: 0, max: 10_000_000 }),
  alertQueueLengthCritical: int('ALERT_QUEUE_LENGTH_CRITICAL', 'jobs waiting in a queue above this: critical', { default: 50, min: 0, max: 10_000_000 }),
  alertFailureRateWarningPct: number('ALERT_FAILURE_RATE_WARNING_PCT', 'failed runs above this percentage of finished ones in the window: warning', 5, { min: 0, max: 100 }),
  alertFailureRateCriticalPct: number('ALERT_FAILURE_RATE_CRITICAL_PCT', 'failed runs above this percentage: critical', 10, { min: 0, max: 100 }),
  alertFailureRateMinRuns: int('ALERT_FAILURE_RATE_MIN_RUNS', 'the failure rate counts only with at least this many finished runs in the window', { default: 10, min: 1, max: 1_000_000 }),
  alertRunTimeWarningSeconds: int('ALERT_RUN_TIME_WARNING_SECONDS', 'average run time of a job in the window above this: warning', { default: 300, min: 0, max: 604_800 }),
  alertRunTimeCriticalSeconds: int('ALERT_RUN_TIME_CRITICAL_SECONDS', 'average run time above this: critical', { default: 600, min: 0, max: 604_800 }),
  alertDeadLettersWarning: int('ALERT_DEAD_LETTERS_WARNING', 'dead letters above this: warning', { default: 5, min: 0, max: 10_000_000 }),
  alertDeadLettersCritical: int('ALERT_DEAD_LETTERS_CRITICAL', 'dead letters above this: critical', { default: 20, min: 0, max: 10_000_000 }),
  alertDbConnectionsWarningPct: number('ALERT_DB_CONNECTIONS_WARNING_PCT', "client connections above this percentage of the server's max_connections: warning", 80, { min: 0, max: 100 }),
  alertDbConnectionsCriticalPct: number('ALERT_DB_CONNECTIONS_CRITICAL_PCT', 'client connections above this percentage of max_connections: critical', 95, { min: 0, max: 100 }),
  alertTransactionAgeWarningSeconds: int('ALERT_TRANSACTION_AGE_WARNING_SECONDS', 'a transaction open longer than this (vacuum cannot clean behind it): warning', { default: 600, min: 1, max: 604_800 }),
  alertTransactionAgeCriticalSeconds: int('ALERT_TRANSACTION_AGE_CRITICAL_SECONDS', 'a transaction open longer than this: critical', { default: 3600, min: 1, max: 604_800 }),
  alertDeadRowsWarningPct: number('ALERT_DEAD_ROWS_WARNING_PCT', 'dead rows above this percentage of wombat.runs or pg-boss\'s job table (vacuum is behind): warning', 20, { min: 0, max: 100 }),
  alertDeadRowsCriticalPct: number('ALERT_DEAD_ROWS_CRITICAL_PCT', 'dead rows above this percentage of a hot table: critical', 50, { min: 0, max: 100 }),
  alertDeadRowsMinRows: int('ALERT_DEAD_ROWS_MIN_ROWS', 'the dead-row share of a table counts only from this many dead rows', { default: 10_000, min: 1, max: 1_000_000_000 }),
  alertDiskWarningPct: number('ALERT_DISK_WARNING_PCT', 'a file system of DATA_ROOT, BACKUP_DIR or the database (when on this host) fuller than this percentage: warning', 85, { min: 0, max: 100 }),
  alertDiskCriticalPct: number('ALERT_DISK_CRITICAL_PCT', 'such a file system fuller than this percentage: critical', 95, { min: 0, max: 100 }),
  alertWindowMinutes: int('ALERT_WINDOW_MINUTES', 'window of the failure rate and average run time', { default: 60, min: 1, max: 10_080 }),
  alertDailyReportTime: timeOfDayOrOff('ALERT_DAILY_REPORT_TIME', 'time of day (HH:MM, in TZ) of the daily report on yesterday, or off', '08:00'),
  alertRetentionDays: int('ALERT_RETENTION_DAYS', 'resolved alerts and their deliveries are deleted after this many days', { default: 90, min: 1, max: 3650 }),
};

/**
 * The directories whose file systems are watched, as the engine and the api see them
 * (the same environment file in production): the candle files and the backups.
 */
export const watchedPathFields = {
  watchDataRoot: str('DATA_ROOT', 'directory of the Parquet candle files (relative to the checkout)', { default: './data' }),
  watchBackupDir: optionalStr('BACKUP_DIR', 'directory of the database backups; unset: no backups'),
};

export const alertFields = { ...alertChannelFields, ...alertEvaluatorFields };

export type AlertChannelConfig = ConfigOf<typeof alertChannelFields>;
export type AlertConfig = ConfigOf<typeof alertFields>;

/** Problems no single variable shows: levels in the wrong order, e-mail without addresses. */
export function alertConfigProblems(c: Partial<AlertConfig> & AlertChannelConfig): string[] {
  const problems: string[] = [];
  if (c.smtpUrl !== undefined && (c.alertEmailFrom === undefined || c.alertEmailTo.length === 0)) {
    problems.push('SMTP_URL is set: ALERT_EMAIL_FROM and ALERT_EMAIL_TO are needed too');
  }
  const order = (w: string, wv: number | undefined, cr: string, cv: number | undefined, dir: 'above' | 'below') => {
    if (wv === undefined || cv === undefined) return;
    if (dir === 'above' ? cv < wv : cv > wv) problems.push(`${cr} must be ${dir === 'above' ? 'at least' : 'at most'} ${w} (${cv} vs ${wv})`);
  };
  order('ALERT_QUEUE_LENGTH_WARNING', c.alertQueueLengthWarning, 'ALERT_QUEUE_LENGTH_CRITICAL', c.alertQueueLengthCritical, 'above');
  order('ALERT_FAILURE_RATE_WARNING_PCT', c.alertFailureRateWarningPct, 'ALERT_FAILURE_RATE_CRITICAL_PCT', c.alertFailureRateCriticalPct, 'above');
  order('ALERT_RUN_TIME_WARNING_SECONDS', c.alertRunTimeWarningSeconds, 'ALERT_RUN_TIME_CRITICAL_SECONDS', c.alertRunTimeCriticalSeconds, 'above');
  order('ALERT_DEAD_LETTERS_WARNING', c.alertDeadLettersWarning, 'ALERT_DEAD_LETTERS_CRITICAL', c.alertDeadLettersCritical, 'above');
  order('ALERT_DB_CONNECTIONS_WARNING_PCT', c.alertDbConnectionsWarningPct, 'ALERT_DB_CONNECTIONS_CRITICAL_PCT', c.alertDbConnectionsCriticalPct, 'above');
  order('ALERT_TRANSACTION_AGE_WARNING_SECONDS', c.alertTransactionAgeWarningSeconds, 'ALERT_TRANSACTION_AGE_CRITICAL_SECONDS', c.alertTransactionAgeCriticalSeconds, 'above');
  order('ALERT_DEAD_ROWS_WARNING_PCT', c.alertDeadRowsWarningPct, 'ALERT_DEAD_ROWS_CRITICAL_PCT', c.alertDeadRowsCriticalPct, 'above');
  order('ALERT_DISK_WARNING_PCT', c.alertDiskWarningPct, 'ALERT_DISK_CRITICAL_PCT', c.alertDiskCriticalPct, 'above');
  order('ALERT_WORKERS_WARNING', c.alertWorkersWarning, 'ALERT_WORKERS_CRITICAL', c.alertWorkersCritical, 'below');
  if (c.alertStaleFactor !== undefined && c.alertStaleFactor > 0 && c.alertStaleFactor < 1) problems.push('ALERT_STALE_FACTOR must be 0 (off) or at least 1');
  if (c.alertRetryBaseMs !== undefined && c.alertRetryMaxMs !== undefined && c.alertRetryMaxMs < c.alertRetryBaseMs) {
    problems.push('ALERT_RETRY_MAX_MS must be at least ALERT_RETRY_BASE_MS');
  }
  return problems;
}
