import { alertChannelFields, alertConfigProblems, alertEvaluatorFields, watchedPathFields } from '@wombat/core/alerts';
import { addressSetField } from './trusted-networks.ts';
import { ConfigError, type ConfigOf, databaseFields, int, loadConfig as load, oneOf, optionalStr, processFields, str, timeZone } from '@wombat/core/platform';

/** Deadlines of the api's own (defaults of the fields below, and of buildApp when a test leaves them out). */
export const API_DEADLINE_DEFAULTS = { submitTimeoutMs: 2_000, healthPingTimeoutMs: 2_000 } as const;

export const apiConfigSchema = {
  ...databaseFields,
  ...processFields,
  host: str('API_HOST', 'address the HTTP API listens on', { default: '127.0.0.1' }),
  port: int('API_PORT', 'port the HTTP API listens on', { default: 8000, min: 0, max: 65535 }),
  adminToken: optionalStr('API_ADMIN_TOKEN', 'bearer token for every mutating endpoint (at least 16 characters); unset with the embedded database (local npm start): generated into API_ADMIN_TOKEN_FILE', {
    secret: true,
  }),
  readToken: optionalStr('API_READ_TOKEN', 'optional bearer token for read endpoints (read-only: mutations answer 403)', { secret: true }),
  authReads: oneOf('API_AUTH_READS', 'open: read endpoints need no token; token: they need API_READ_TOKEN or API_ADMIN_TOKEN', ['open', 'token'], {
    default: 'open',
  }),
  trustedNetworks: addressSetField(
    'API_TRUSTED_NETWORKS',
    'networks (CIDRs or addresses, comma-separated, IPv4 and IPv6) whose requests without a token are accepted as admin, each logged with its address: for a closed network whose old clients send no token; unset: none',
  ),
  trustedProxies: addressSetField(
    'API_TRUSTED_PROXIES',
    'reverse proxies (CIDRs or addresses) whose X-Forwarded-For is believed when judging API_TRUSTED_NETWORKS; unset: none (the direct peer counts)',
  ),
  adminTokenFile: str('API_ADMIN_TOKEN_FILE', 'where local runs keep a generated admin token (relative to the checkout, mode 0600)', {
    default: '.wombat/api-admin-token',
  }),
  taskResultTtlDays: int('TASK_RESULT_TTL_DAYS', 'days finished task results are kept before maintenance removes them (shown as expires_at)', {
    default: 7,
    min: 1,
    max: 3650,
  }),
  timezone: timeZone('TZ', 'time zone (IANA) of schedules created without one', { default: 'Asia/Seoul' }),
  bodyLimitBytes: int('API_BODY_LIMIT_BYTES', 'largest request body accepted, in bytes', { default: 1_048_576, min: 1024, max: 104_857_600 }),
  submitTimeoutMs: int('API_SUBMIT_TIMEOUT_MS', 'a task submission not committed within this many ms is answered 503 database_unavailable (and not written)', {
    default: API_DEADLINE_DEFAULTS.submitTimeoutMs,
    min: 100,
    max: 600_000,
  }),
  ...alertChannelFields,
  alertStaleFactor: alertEvaluatorFields.alertStaleFactor,
  // The dashboard colours its figures by the alerts' own thresholds.
  alertWorkersWarning: alertEvaluatorFields.alertWorkersWarning,
  alertWorkersCritical: alertEvaluatorFields.alertWorkersCritical,
  alertQueueLengthWarning: alertEvaluatorFields.alertQueueLengthWarning,
  alertQueueLengthCritical: alertEvaluatorFields.alertQueueLengthCritical,
  alertFailureRateWarningPct: alertEvaluatorFields.alertFailureRateWarningPct,
  alertFailureRateCriticalPct: alertEvaluatorFields.alertFailureRateCriticalPct,
  alertRunTimeWarningSeconds: alertEvaluatorFields.alertRunTimeWarningSeconds,
  alertRunTimeCriticalSeconds: alertEvaluatorFields.alertRunTimeCriticalSeconds,
  alertDeadLettersWarning: alertEvaluatorFields.alertDeadLettersWarning,
  alertDeadLettersCritical: alertEvaluatorFields.alertDeadLettersCritical,
  alertDbConnectionsWarningPct: alertEvaluatorFields.alertDbConnectionsWarningPct,
  alertDbConnectionsCriticalPct: alertEvaluatorFields.alertDbConnectionsCriticalPct,
  alertTransactionAgeWarningSeconds: alertEvaluatorFields.alertTransactionAgeWarningSeconds,
  alertTransactionAgeCriticalSeconds: alertEvaluatorFields.alertTransactionAgeCriticalSeconds,
  alertDeadRowsWarningPct: alertEvaluatorFields.alertDeadRowsWarningPct,
  alertDeadRowsCriticalPct: alertEvaluatorFields.alertDeadRowsCriticalPct,
  alertDiskWarningPct: alertEvaluatorFields.alertDiskWarningPct,
  alertDiskCriticalPct: alertEvaluatorFields.alertDiskCriticalPct,
  // The overview and /metrics show the free space of these directories' file systems.
  ...watchedPathFields,
};

export type ApiConfig = ConfigOf<typeof apiConfigSchema>;

export function loadConfig(env: Record<string, string | undefined> = process.env): ApiConfig {
  const config = load(apiConfigSchema, env);
  const problems: string[] = [];
  if (config.adminToken !== undefined && config.adminToken.length < 16) problems.push('API_ADMIN_TOKEN=(value hidden): must be at least 16 characters');
  if (config.readToken !== undefined && config.readToken.length < 16) problems.push('API_READ_TOKEN=(value hidden): must be at least 16 characters');
  if (config.readToken !== undefined && config.readToken === config.adminToken) problems.push('API_READ_TOKEN must differ from API_ADMIN_TOKEN');
  problems.push(...alertConfigProblems(config));
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
