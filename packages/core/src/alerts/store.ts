import { sql, type Kysely, type Transaction } from 'kysely';
import type { AlertAction, OpenAlert } from './plan.ts';
import type { AlertMessage, ChannelName, Condition, DeliveryEvent, DeliveryState, Severity } from './types.ts';

/**
 * The alert tables' SQL, one function per statement, database handle first.
 * Only the evaluator (under its advisory lock) opens, updates and resolves
 * alerts; delivery loops only touch wombat.alert_deliveries.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any> | Transaction<any>;

export const ALERTS_LOCK = 'wombat.alerts';

interface AlertRow {
  id: number;
  key: string;
  kind: string;
  severity: Severity;
  state: 'open' | 'resolved';
  subject: string;
  message: string;
  details: unknown;
  opened_at: Date;
  resolved_at: Date | null;
}

/** True when this transaction holds the evaluator's lock; released at commit. */
export async function tryAlertsLock(db: Transaction<any>): Promise<boolean> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(hashtext(${ALERTS_LOCK})) as locked`.execute(db);
  return rows[0]?.locked === true;
}

export async function selectOpenAlerts(db: Db): Promise<OpenAlert[]> {
  const { rows } = await sql<{
    id: number;
    key: string;
    kind: string;
    severity: Severity;
    subject: string;
    message: string;
    details: unknown;
    clear_since: Date | null;
    last_notified_at: Date | null;
    notified_severity: Severity | null;
  }>`select id, key, kind, severity, subject, message, details, clear_since, last_notified_at, notified_severity from wombat.alerts where state = 'open'`.execute(db);
  return rows.map((r) => ({
    id: r.id,
    key: r.key,
    kind: r.kind,
    severity: r.severity,
    subject: r.subject,
    message: r.message,
    details: r.details,
    clearSince: r.clear_since ? new Date(r.clear_since) : null,
    lastNotifiedAt: r.last_notified_at ? new Date(r.last_notified_at) : null,
    notifiedSeverity: r.notified_severity,
  }));
}

export function messageOf(a: AlertRow, event: DeliveryEvent): AlertMessage {
  return {
    alert_id: a.id,
    key: a.key,
    kind: a.kind,
    severity: a.severity,
    event,
    subject: a.subject,
    message: a.message,
    details: a.details,
    opened_at: new Date(a.opened_at).toISOString(),
    resolved_at: a.resolved_at ? new Date(a.resolved_at).toISOString() : null,
  };
}

export async function insertDeliveries(db: Db, alertId: number, message: AlertMessage, channels: readonly ChannelName[]): Promise<void> {
  if (channels.length === 0) return;
  await sql`
    insert into wombat.alert_deliveries (alert_id, channel, event, payload)
    select ${alertId}, c, ${message.event}, ${JSON.stringify(message)}::text::jsonb from unnest(${channels as string[]}::text[]) as c`.execute(db);
}

export async function bumpCounter(db: Db, name: string, label: string, by = 1): Promise<void> {
  await sql`
    insert into wombat.alert_counters (name, label, value) values (${name}, ${label}, ${by})
    on conflict (name, label) do update set value = wombat.alert_counters.value + excluded.value`.execute(db);
}

async function insertAlert(db: Db, c: Condition, state: 'open' | 'resolved'): Promise<AlertRow> {
  const { rows } = await sql<AlertRow>`
    insert into wombat.alerts (key, kind, severity, state, subject, message, details, last_notified_at, notified_severity, notifications, resolved_at)
    values (${c.key}, ${c.kind}, ${c.severity}, ${state}, ${c.subject}, ${c.message}, ${JSON.stringify(c.details)}::text::jsonb, now(), ${c.severity}, 1,
            ${state === 'resolved' ? sql`now()` : null})
    returning id, key, kind, severity, state, subject, message, details, opened_at, resolved_at`.execute(db);
  return rows[0]!;
}

/** Records an alert that is a message only (daily report, test): resolved at once, sent once. */
export async function recordMessageAlert(db: Db, c: Condition, event: DeliveryEvent, channels: readonly ChannelName[]): Promise<AlertRow> {
  const row = await insertAlert(db, c, 'resolved');
  await insertDeliveries(db, row.id, { ...messageOf(row, event), ...(c.attachments ? { attachments: c.attachments } : {}) }, channels);
  return row;
}

export async function alertKeyExists(db: Db, key: string): Promise<boolean> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from wombat.alerts where key = ${key}`.execute(db);
  return (rows[0]?.n ?? 0) > 0;
}

/**
 * Applies the planner's actions, writing each message to the outbox of every
 * configured channel in the same transaction. Returns how many messages were queued.
 */
export async function applyAlertActions(
  db: Db,
  actions: AlertAction[],
  channels: readonly ChannelName[],
  opts: { runBurst?: number } = {},
): Promise<{ opened: number; resolved: number; messages: number }> {
  let opened = 0;
  let resolved = 0;
  let messages = 0;
  // A storm of failed runs (a fan-out whose children all fail) is one message per run up to
  // runBurst, then one summary: every run still gets its own alert row.
  const runBurst = opts.runBurst ?? Infinity;
  let runOpens = 0;
  const quiet = new Map<string, number>();
  // Resolutions the same way: a storm that clears (an exchange back, its dead letters requeued)
  // is runBurst RESOLVED messages, then one summary; every alert row still resolves.
  let runResolves = 0;
  const quietResolved = new Map<string, number>();
  for (const a of actions) {
    if (a.type === 'open') {
      const row = await insertAlert(db, a.condition, 'open');
      const isRun = row.kind === 'run_failed' || row.kind === 'run_lost';
      if (isRun && ++runOpens > runBurst) {
        const job = String((a.condition.details as { job?: unknown }).job ?? 'unknown');
        quiet.set(job, (quiet.get(job) ?? 0) + 1);
        await bumpCounter(db, 'raised', `${row.kind}:${row.severity}`);
        opened++;
        continue;
      }
      await insertDeliveries(db, row.id, messageOf(row, 'opened'), channels);
      await bumpCounter(db, 'raised', `${row.kind}:${row.severity}`);
      opened++;
      messages++;
    } else if (a.type === 'update') {
      const c = a.condition;
      const { rows } = await sql<AlertRow>`
        update wombat.alerts set severity = ${c.severity}, subject = ${c.subject}, message = ${c.message},
          details = ${JSON.stringify(c.details)}::text::jsonb, clear_since = null, updated_at = now()
          ${a.notify ? sql`, last_notified_at = now(), notified_severity = ${c.severity}, notifications = notifications + 1` : sql``}
        where id = ${a.id} and state = 'open'
        returning id, key, kind, severity, state, subject, message, details, opened_at, resolved_at`.execute(db);
      if (a.notify && rows[0]) {
        await insertDeliveries(db, a.id, messageOf(rows[0], a.notify), channels);
        messages++;
      }
    } else if (a.type === 'clearing') {
      await sql`update wombat.alerts set clear_since = now(), updated_at = now() where id = ${a.id} and state = 'open' and clear_since is null`.execute(db);
    } else {
      const { rows } = await sql<AlertRow>`
        update wombat.alerts set state = 'resolved', resolved_at = now(), updated_at = now(), last_notified_at = now(), notifications = notifications + 1
        where id = ${a.id} and state = 'open'
        returning id, key, kind, severity, state, subject, message, details, opened_at, resolved_at`.execute(db);
      const row = rows[0];
      if (!row) continue;
      if ((row.kind === 'run_failed' || row.kind === 'run_lost') && ++runResolves > runBurst) {
        const job = String((row.details as { job?: unknown } | null)?.job ?? 'unknown');
        quietResolved.set(job, (quietResolved.get(job) ?? 0) + 1);
        resolved++;
        continue;
      }
      // A RESOLVED goes where the alert's OPENED went (a quiet opening, or a channel added since, gets none).
      const { rows: told } = await sql<{ channel: ChannelName }>`
        select distinct channel from wombat.alert_deliveries where alert_id = ${row.id} and event = 'opened'`.execute(db);
      const toldChannels = channels.filter((c) => told.some((x) => x.channel === c));
      const openedAt = new Date(row.opened_at);
      const lasted = Math.round((new Date(row.resolved_at!).getTime() - openedAt.getTime()) / 60_000);
      const message = { ...messageOf(row, 'resolved'), message: `Cleared: ${row.subject} (open since ${openedAt.toISOString().replace(/\.\d+Z$/, 'Z')}, ${lasted} min).` };
      await insertDeliveries(db, row.id, message, toldChannels);
      resolved++;
      if (toldChannels.length > 0) messages++;
    }
  }
  if (quietResolved.size > 0) {
    const n = [...quietResolved.values()].reduce((x, y) => x + y, 0);
    const byJob = [...quietResolved].map(([job, k]) => `${job} ${k}`).join(', ');
    await recordMessageAlert(
      db,
      {
        key: `run_failed_burst:resolved:${Date.now()}`,
        kind: 'run_failed_burst',
        severity: 'info',
        subject: `${n} more run alerts cleared`,
        message: `Besides the ${runBurst} RESOLVED messages just sent, ${n} more run alerts cleared (none of their runs is a dead letter any more): ${byJob}.\nLook: GET /api/alerts?kind=run_failed on the api`,
        details: { alerts: n, by_job: Object.fromEntries(quietResolved) },
      },
      'resolved',
      channels,
    );
    messages++;
  }
  if (quiet.size > 0) {
    const n = [...quiet.values()].reduce((x, y) => x + y, 0);
    const byJob = [...quiet].map(([job, k]) => `${job} ${k}`).join(', ');
    await recordMessageAlert(
      db,
      {
        key: `run_failed_burst:${Date.now()}`,
        kind: 'run_failed_burst',
        severity: 'critical',
        subject: `${n} more runs failed for good or were lost`,
        message: `Besides the ${runBurst} run alerts just sent, ${n} more runs failed for good or were lost: ${byJob}.\nLook: GET /api/alerts?kind=run_failed and GET /api/dead-letters on the api`,
        details: { runs: n, by_job: Object.fromEntries(quiet) },
      },
      'opened',
      channels,
    );
    messages++;
  }
  return { opened, resolved, messages };
}

/** Deletes resolved alerts (and their deliveries) older than the retention, in one bounded batch. */
export async function purgeOldAlerts(db: Db, retentionDays: number, limit = 1000): Promise<number> {
  const res = await sql`
    delete from wombat.alerts where id in (
      select id from wombat.alerts where state = 'resolved' and opened_at < now() - make_interval(days => ${retentionDays}) limit ${limit})`.execute(db);
  return Number(res.numAffectedRows ?? 0);
}

/** Today's database size sample (the latest of the day wins); samples older than 90 days go. */
export async function recordDatabaseSize(db: Db, bytes: number): Promise<void> {
  await sql`
    with gone as (delete from wombat.database_size_samples where day < current_date - 90)
    insert into wombat.database_size_samples (day, bytes) values (current_date, ${bytes})
    on conflict (day) do update set bytes = excluded.bytes, sampled_at = now()`.execute(db);
}

export interface ClaimedDelivery {
  id: number;
  alert_id: number;
  payload: AlertMessage;
  attempts: number;
}

/**
 * Takes up to `limit` due messages of one channel, oldest first and in order:
 * it stops at the first message still waiting for its retry, so a channel never
 * gets an alert's RESOLVED before the alert. Due are pending messages whose
 * retry time has come and ones whose sender died mid-send (lease passed).
 * Skip-locked, so engines draining the same channel never take the same message.
 */
export async function claimDeliveries(db: Kysely<any>, channel: ChannelName, leaseMs: number, limit: number): Promise<ClaimedDelivery[]> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return db.transaction().execute(async (trx) => {
    // One claimer per channel at a time, and rows waited for rather than skipped: a message
    // whose row is being marked failed (to retry later) is never overtaken by the next one,
    // so an alert's RESOLVED always follows its OPENED on every channel.
    await sql`select pg_advisory_xact_lock(hashtext(${`wombat.alert_deliveries:${channel}`}))`.execute(trx);
    const { rows } = await sql<{ id: number; due: boolean }>`
      select id, (state = 'pending' and next_attempt_at <= now()) or (state = 'sending' and lease_until < now()) as due
      from wombat.alert_deliveries
      where channel = ${channel} and state in ('pending', 'sending')
      order by id limit ${limit} for update`.execute(trx);
    const ids: number[] = [];
    for (const r of rows) {
      if (!r.due) break;
      ids.push(r.id);
    }
    if (ids.length === 0) return [];
    const claimed = await sql<ClaimedDelivery>`
      update wombat.alert_deliveries set state = 'sending', attempts = attempts + 1,
        lease_until = now() + make_interval(secs => ${leaseMs / 1000})
      where id = any(${ids}::bigint[])
      returning id, alert_id, payload, attempts`.execute(trx);
    return claimed.rows.sort((a, b) => a.id - b.id);
  });
}

/** The stable id of a delivery, the same on every attempt (see AlertMessage.delivery_id). */
export function deliveryId(id: number): string {
  return `wombat-delivery-${id}`;
}

/**
 * Records a sent message, if the caller still holds its lease: `attempts` is the claim's,
 * and a sender whose lease passed (another claimed the message since, attempts moved on)
 * records nothing. Returns whether it did.
 */
export async function markDeliverySent(db: Db, id: number, channel: ChannelName, response: string, attempts: number): Promise<boolean> {
  const { rows } = await sql`
    update wombat.alert_deliveries set state = 'sent', sent_at = now(), response = ${response}, last_error = null, lease_until = null
    where id = ${id} and state = 'sending' and attempts = ${attempts} returning id`.execute(db);
  if (rows.length === 0) return false;
  await bumpCounter(db, 'delivered', channel);
  return true;
}

/** Gives claimed messages back untried (the channel just failed, or the process is stopping): the attempt is not counted. */
export async function releaseDeliveries(db: Db, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await sql`
    update wombat.alert_deliveries set state = 'pending', attempts = greatest(attempts - 1, 0), lease_until = null
    where id = any(${ids}::bigint[]) and state = 'sending'`.execute(db);
}

/** A failed attempt: retried after `retryInMs`, or given up (`retryInMs` null). */
export async function markDeliveryFailed(db: Db, id: number, channel: ChannelName, error: string, retryInMs: number | null, attempts: number): Promise<boolean> {
  const state: DeliveryState = retryInMs === null ? 'failed' : 'pending';
  const { rows } = await sql`
    update wombat.alert_deliveries set state = ${state}, last_error = ${error}, lease_until = null,
      next_attempt_at = now() + make_interval(secs => ${(retryInMs ?? 0) / 1000})
    where id = ${id} and state = 'sending' and attempts = ${attempts} returning id`.execute(db);
  await bumpCounter(db, 'delivery_failures', channel);
  return rows.length > 0;
}

/** Test messages are sent directly by the api; their outcome is recorded like any delivery. */
export async function recordDirectDelivery(db: Db, alertId: number, channel: ChannelName, message: AlertMessage, outcome: { ok: boolean; text: string }): Promise<void> {
  await sql`
    insert into wombat.alert_deliveries (alert_id, channel, event, payload, state, attempts, response, last_error, sent_at)
    values (${alertId}, ${channel}, ${message.event}, ${JSON.stringify(message)}::text::jsonb, ${outcome.ok ? 'sent' : 'failed'}, 1,
            ${outcome.ok ? outcome.text : null}, ${outcome.ok ? null : outcome.text}, ${outcome.ok ? sql`now()` : null})`.execute(db);
  await bumpCounter(db, outcome.ok ? 'delivered' : 'delivery_failures', channel);
}

export interface AlertView extends AlertRow {
  updated_at: Date;
  last_notified_at: Date | null;
  notifications: number;
  deliveries: {
    channel: ChannelName;
    event: DeliveryEvent;
    state: DeliveryState;
    attempts: number;
    next_attempt_at: Date;
    last_error: string | null;
    response: string | null;
    created_at: Date;
    sent_at: Date | null;
  }[];
}

/** Open alerts, then alerts opened or resolved within `recentHours`, newest first. */
export async function listAlerts(db: Db, opts: { state?: 'open' | 'resolved'; kind?: string; recentHours: number; limit: number }): Promise<AlertView[]> {
  const { rows } = await sql<AlertView>`
    select a.id, a.key, a.kind, a.severity, a.state, a.subject, a.message, a.details, a.opened_at, a.updated_at, a.resolved_at,
           a.last_notified_at, a.notifications,
           coalesce((select jsonb_agg(jsonb_build_object(
               'channel', d.channel, 'event', d.event, 'state', d.state, 'attempts', d.attempts, 'next_attempt_at', d.next_attempt_at,
               'last_error', d.last_error, 'response', d.response, 'created_at', d.created_at, 'sent_at', d.sent_at) order by d.id)
             from wombat.alert_deliveries d where d.alert_id = a.id), '[]'::jsonb) as deliveries
    from wombat.alerts a
    where (a.state = 'open' or a.updated_at > now() - make_interval(hours => ${opts.recentHours}))
      ${opts.state ? sql`and a.state = ${opts.state}` : sql``}
      ${opts.kind ? sql`and a.kind = ${opts.kind}` : sql``}
    order by (a.state = 'open') desc, a.opened_at desc, a.id desc
    limit ${opts.limit}`.execute(db);
  return rows;
}
