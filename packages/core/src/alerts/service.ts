import { sql, type Kysely } from 'kysely';
import { backoffMs } from '../platform/backoff.ts';
import { isDatabaseUnavailable } from '../platform/errors.ts';
import type { Logger } from '../platform/logger.ts';
import { channelsFromConfig, type Channel, type ChannelSet } from './channels.ts';
import { gatherConditions } from './conditions.ts';
import type { AlertConfig } from './config.ts';
import { readDatabaseHealth, type WatchedPath } from './database-health.ts';
import { planAlerts } from './plan.ts';
import { buildDailyReport, dailyReportDue, reportCondition } from './report.ts';
import {
  alertKeyExists,
  applyAlertActions,
  claimDeliveries,
  deliveryId,
  markDeliveryFailed,
  markDeliverySent,
  purgeOldAlerts,
  recordDatabaseSize,
  recordMessageAlert,
  releaseDeliveries,
  selectOpenAlerts,
  tryAlertsLock,
} from './store.ts';
import type { ChannelName } from './types.ts';

export interface AlertingOptions extends AlertConfig {
  /** Time zone of the daily report time (TZ). */
  timezone: string;
  /** Directories whose file systems are watched (DATA_ROOT, BACKUP_DIR). */
  watchedPaths?: WatchedPath[];
}

export interface AlertingDeps {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  db: Kysely<any>;
  log: Logger;
  options: AlertingOptions;
  /** Default: the channels the options configure. */
  channels?: ChannelSet;
}

export interface EvaluationResult {
  opened: number;
  resolved: number;
  messages: number;
  report: boolean;
}

export interface Alerting {
  start(): void;
  /** Stops the loops and waits for the passes in flight (each bounded by the channel timeout). Memoized. */
  stop(): Promise<void>;
  /** One evaluation pass now; null when another process holds the evaluator lock. */
  evaluate(): Promise<EvaluationResult | null>;
  /** Sends what is due on one channel now; returns how many messages it tried. */
  deliver(channel: ChannelName): Promise<number>;
  readonly channels: readonly ChannelName[];
}

const CLAIM_BATCH = 20;
const PURGE_EVERY_MS = 3_600_000;
const SIZE_SAMPLE_EVERY_MS = 3_600_000;

/**
 * The alert evaluator and the delivery loops. Any number of processes may run
 * one: an advisory lock lets one evaluate at a time (as retention purges), and
 * skip-locked claims let each channel's messages be sent once. Everything runs
 * on timers of its own, so neither a slow query nor a slow channel holds up the
 * process's other work (in the engine: scheduling), and each channel has its own
 * loop so a dead one never holds up another.
 */
export function createAlerting(deps: AlertingDeps): Alerting {
  const { db, options: o } = deps;
  const log = deps.log.child({ component: 'alerts' });
  const set = deps.channels ?? channelsFromConfig(o, log);
  const names = set.channels.map((c) => c.name);
  const timers: NodeJS.Timeout[] = [];
  const inFlight = new Set<Promise<unknown>>();
  let running = false;
  let stopping: Promise<void> | undefined;
  let lastPurgeMs = 0;
  let lastSizeSampleMs = 0;
  const wake = new Map<ChannelName, () => void>();

  async function evaluate(): Promise<EvaluationResult | null> {
    const result = await db.transaction().execute(async (trx) => {
      if (!(await tryAlertsLock(trx))) return null;
      // A stuck query must not hold the lock (and this loop) for ever.
      await sql`set local statement_timeout = '30s'`.execute(trx);
      // The database clock, like the timestamps the planner compares with (clear_since, last_notified_at).
      const nowMs = (await sql<{ ms: number }>`select (extract(epoch from now()) * 1000)::float8 as ms`.execute(trx)).rows[0]!.ms;
      const open = await selectOpenAlerts(trx);
      const { conditions, unevaluated, errors } = await gatherConditions(trx, o, { open, nowMs });
      for (const err of errors) log.warn({ err }, 'an alert condition could not be evaluated; its alerts stay as they are');
      const actions = planAlerts(open, conditions, nowMs, { cooldownMs: o.alertCooldownMs, repeatMs: o.alertRepeatMs, resolveAfterMs: o.alertResolveAfterMs }, unevaluated);
      const applied = await applyAlertActions(trx, actions, names, { runBurst: o.alertRunBurst });
      let report = false;
      if (o.alertDailyReportTime) {
        const key = await dailyReportDue(trx, o.timezone, o.alertDailyReportTime);
        if (key && !(await alertKeyExists(trx, key))) {
          await recordMessageAlert(trx, reportCondition(key, await buildDailyReport(trx, o.timezone)), 'report', names);
          report = true;
          applied.messages++;
        }
      }
      if (nowMs - lastSizeSampleMs > SIZE_SAMPLE_EVERY_MS) {
        lastSizeSampleMs = nowMs;
        await recordDatabaseSize(trx, (await readDatabaseHealth(trx)).size_bytes);
      }
      if (nowMs - lastPurgeMs > PURGE_EVERY_MS) {
        lastPurgeMs = nowMs;
        await purgeOldAlerts(trx, o.alertRetentionDays);
      }
      return { ...applied, report };
    });
    if (result && (result.opened > 0 || result.resolved > 0 || result.report)) {
      log.info({ opened: result.opened, resolved: result.resolved, report: result.report, channels: names }, names.length > 0 ? 'alerts changed' : 'alerts changed (recorded; no channel configured)');
    }
    if (result && result.messages > 0) for (const w of wake.values()) w();
    return result;
  }

  function retryDelayMs(attempts: number, retryAfterMs?: number): number {
    const exp = backoffMs(Math.max(attempts, 1), { baseMs: o.alertRetryBaseMs, maxMs: o.alertRetryMaxMs, jitter: 'none' });
    return Math.max(exp, Math.min(retryAfterMs ?? 0, o.alertRetryMaxMs));
  }

  async function deliverOn(channel: Channel): Promise<number> {
    // The lease outlasts the channel's own deadline, so a live sender never loses a message to another.
    const claimed = await claimDeliveries(db, channel.name, o.alertChannelTimeoutMs * 2 + 5_000, CLAIM_BATCH);
    let tried = 0;
    for (const [i, d] of claimed.entries()) {
      if (stopping && i > 0) {
        // Stopping: what is left goes back untried rather than holding up the stop.
        await releaseDeliveries(db, claimed.slice(i).map((x) => x.id));
        break;
      }
      // At-least-once: a crash between send and mark sends again after the lease, with the same delivery id.
      const res = await channel.send({ ...d.payload, delivery_id: deliveryId(d.id) });
      tried++;
      if (res.ok) {
        const mine = await markDeliverySent(db, d.id, channel.name, res.response, d.attempts);
        if (mine) log.info({ channel: channel.name, alertId: d.alert_id, event: d.payload.event, attempts: d.attempts }, 'alert sent');
        else log.warn({ channel: channel.name, alertId: d.alert_id, deliveryId: deliveryId(d.id) }, 'alert sent after its lease passed: another sender has it; the receiver may see this delivery id twice');
      } else {
        const giveUp = res.permanent || d.attempts >= o.alertMaxAttempts;
        const retryInMs = giveUp ? null : retryDelayMs(d.attempts, res.retryAfterMs);
        await markDeliveryFailed(db, d.id, channel.name, res.error, retryInMs, d.attempts);
        log.warn(
          { channel: channel.name, alertId: d.alert_id, attempts: d.attempts, error: res.error, ...(retryInMs === null ? {} : { retryInMs }) },
          giveUp ? 'alert delivery failed; giving up' : 'alert delivery failed; will retry',
        );
        if (!res.permanent) {
          // The channel is down: the rest would fail the same way, each after a deadline. They wait
          // for the next pass untried; the failed one waits for its back-off.
          await releaseDeliveries(db, claimed.slice(i + 1).map((x) => x.id));
          break;
        }
      }
    }
    return tried;
  }

  function deliver(name: ChannelName): Promise<number> {
    const ch = set.channels.find((c) => c.name === name);
    return ch ? deliverOn(ch) : Promise.resolve(0);
  }

  /** A loop that never overlaps itself; `kick` runs it again as soon as the current pass ends. */
  function loop(name: string, everyMs: number, fn: () => Promise<unknown>): () => void {
    let busy = false;
    let again = false;
    let databaseDown = false;
    const run = () => {
      if (!running) return;
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      const p = fn()
        .then(
          () => {
            if (databaseDown) log.info(`${name} resumed: the database answers again`);
            databaseDown = false;
          },
          (err: unknown) => {
            // Said once per outage, and not as a failure of the channel: nothing was sent or tried.
            if (!isDatabaseUnavailable(err)) log.warn({ err }, `${name} failed; will retry`);
            else if (!databaseDown) log.warn({ err }, `${name} waits: the database is unavailable`);
            databaseDown = isDatabaseUnavailable(err);
          },
        )
        .finally(() => {
          busy = false;
          inFlight.delete(p);
          if (again && running) {
            again = false;
            setImmediate(run);
          }
        });
      inFlight.add(p);
    };
    timers.push(setInterval(run, everyMs));
    return run;
  }

  return {
    channels: names,
    start() {
      if (running || stopping) return;
      running = true;
      const evaluateNow = loop('alert evaluation', o.alertEvaluateIntervalMs, evaluate);
      for (const ch of set.channels) wake.set(ch.name, loop(`alert delivery (${ch.name})`, o.alertDeliverIntervalMs, () => deliverOn(ch)));
      setImmediate(evaluateNow);
      for (const w of wake.values()) setImmediate(w);
      log.info({ channels: names, evaluateIntervalMs: o.alertEvaluateIntervalMs }, 'alerting started');
    },
    stop() {
      stopping ??= (async () => {
        running = false;
        for (const t of timers) clearInterval(t);
        await Promise.allSettled([...inFlight]);
        set.close();
      })();
      return stopping;
    },
    evaluate,
    deliver,
  };
}
