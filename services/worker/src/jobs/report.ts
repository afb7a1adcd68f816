import { sql } from 'kysely';
import { PermanentError } from '@wombat/core/platform';
import { alertKeyExists, recordMessageAlert } from '@wombat/core/alerts';
import { buildCollectionReport, reportMessage } from '../report/collection-report.ts';
import type { HandlerDeps, JobContext } from './types.ts';

/**
 * The weekly or monthly collection report: built from the run history and the
 * collectors' tables, recorded as a message for every alert channel this worker's
 * configuration names (the engines deliver it, with retries). Once per period: a
 * retry, or a second run for the same period, finds it recorded and sends nothing.
 */
export async function collectionReport(ctx: JobContext<'collection-report'>, deps: HandlerDeps): Promise<unknown> {
  const timezone = ctx.params.timezone ?? 'UTC';
  try {
    new Intl.DateTimeFormat('en', { timeZone: timezone });
  } catch {
    throw new PermanentError('invalid_input', `timezone "${timezone}" is not an IANA time zone, like Asia/Seoul or UTC`);
  }
  const report = await buildCollectionReport(deps.db, ctx.params.period, timezone);
  const message = reportMessage(report);
  const channels = deps.reportChannels ?? [];
  const recorded = await deps.db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext(${message.key}))`.execute(trx);
    if (await alertKeyExists(trx, message.key)) return false;
    await recordMessageAlert(trx, message, 'report', channels);
    return true;
  });
  if (recorded && channels.length === 0) ctx.log.warn({ report: message.key }, 'collection report recorded; no alert channel configured on this worker (SLACK_WEBHOOK_URL, SMTP_URL, ALERT_WEBHOOK_URL): not sent');
  return {
    report: message.key,
    period: report.label,
    from: report.from,
    to: report.to,
    recorded,
    ...(recorded ? { channels } : { already_recorded: true }),
    candles_added: report.series.reduce((s, x) => s + x.candles_added, 0),
    failed_runs: report.failures.reduce((s, x) => s + x.runs, 0),
  };
}
