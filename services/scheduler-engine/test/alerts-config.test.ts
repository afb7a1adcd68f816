import t from 'tap';
import { ConfigError } from '@wombat/core/platform';
import { loadConfig } from '@wombat/scheduler-engine';

function problems(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  return '';
}

t.test('alert defaults follow the playbook', async (t) => {
  const c = loadConfig({});
  t.match(c, {
    alertsEnabled: true,
    slackEnabled: true,
    alertQueueLengthWarning: 10,
    alertQueueLengthCritical: 50,
    alertFailureRateWarningPct: 5,
    alertFailureRateCriticalPct: 10,
    alertRunTimeWarningSeconds: 300,
    alertRunTimeCriticalSeconds: 600,
    alertDeadLettersWarning: 5,
    alertDeadLettersCritical: 20,
    alertWorkersWarning: 1,
    alertWorkersCritical: 0,
    alertDailyReportTime: '08:00',
    alertStaleFactor: 1.5,
  });
  t.equal(c.slackWebhookUrl, undefined);
  t.same(c.alertEmailTo, []);
  t.equal(loadConfig({ ALERT_DAILY_REPORT_TIME: 'off' }).alertDailyReportTime, null);
});

t.test('bad alert settings are named, secrets hidden', async (t) => {
  const msg = problems({
    SLACK_WEBHOOK_URL: 'hooks.slack.com/services/T/B/s3cr3t',
    SMTP_URL: 'smtp://u:pa55@mail:25',
    ALERT_QUEUE_LENGTH_WARNING: '60',
    ALERT_FAILURE_RATE_WARNING_PCT: 'five',
    ALERT_DAILY_REPORT_TIME: '25:00',
    ALERT_STALE_FACTOR: '0.5',
  });
  t.match(msg, /SLACK_WEBHOOK_URL=\(value hidden\): must be a URL like https:\/\/hooks\.slack\.com/);
  t.match(msg, /ALERT_FAILURE_RATE_WARNING_PCT="five": must be a number between 0 and 100/);
  t.match(msg, /ALERT_DAILY_REPORT_TIME="25:00": must be a time of day HH:MM/);
  t.notMatch(msg, /s3cr3t|pa55/);
  const cross = problems({ SMTP_URL: 'smtp://u:pa55@mail:25', ALERT_QUEUE_LENGTH_WARNING: '60', ALERT_STALE_FACTOR: '0.5' });
  t.match(cross, /SMTP_URL is set: ALERT_EMAIL_FROM and ALERT_EMAIL_TO are needed too/);
  t.match(cross, /ALERT_QUEUE_LENGTH_CRITICAL must be at least ALERT_QUEUE_LENGTH_WARNING \(50 vs 60\)/);
  t.match(cross, /ALERT_STALE_FACTOR must be 0 \(off\) or at least 1/);
  t.notMatch(cross, /pa55/);
});
