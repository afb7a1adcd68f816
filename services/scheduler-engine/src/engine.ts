import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import {
  AppError,
  listSchedulesAfter,
  pingDatabase,
  rowToSchedule,
  SCHEDULES_CHANNEL,
  SQLSTATE,
  sqlState,
  upsertBuiltInSchedule,
  type CoreTables,
  type Logger,
  type PgBoss,
  type ScheduleDefinition,
  type SchedulerTables,
  type Sql,
} from '@wombat/core';
import { purgeFinishedRuns, releaseHeldRuns } from './housekeeping.ts';
import { publishBatch, type PublishedOccurrence } from './publish.ts';
import { MAX_DUE_PER_PASS, planSlot, type DueGroup } from './due.ts';
import { createLastRunWriter } from './last-runs.ts';
import { computeNext, createScheduleSet, type Slot } from './schedule-set.ts';
import { beatEngine, insertEngine, markEngineStopped, setNextRunAt } from './statements.ts';

export interface EngineOptions {
  enabled: boolean;
  /** Shown in the heartbeat row: where this engine runs. */
  host: string;
  pid: number;
  builtIns: ScheduleDefinition[];
  version: string;
  reconcileIntervalMs: number;
  heartbeatIntervalMs: number;
  misfireGraceMs: number;
  heldRunCheckMs: number;
  maintenanceIntervalMs: number;
  taskResultTtlDays: number;
  runRetentionDays: number;
}

export interface EngineDeps {
  db: Kysely<CoreTables>;
  /** The postgres.js client under `db`, for LISTEN. */
  sql: Sql;
  boss: PgBoss;
  log: Logger;
  options: EngineOptions;
  /** Milliseconds since the epoch; default: this host's clock corrected to the database clock. */
  clock?: () => number;
  /** Called after each committed batch with the occurrences this engine recorded and the commit instant. */
  onPublished?: (occurrences: PublishedOccurrence[], committedAtMs: number) => void;
}

export interface Engine {
  readonly id: string;
  start(): Promise<void>;
  /** Stops timers and listening, waits for the batch in flight, marks the heartbeat row stopped. Memoized. */
  stop(): Promise<void>;
  /** Re-reads every schedule now (also runs on an interval and on notifications). */
  reconcile(): Promise<void>;
  /** Runs a publish pass now and waits for it (the timer does the same at each fire instant). */
  runPass(): Promise<void>;
  status(): { enabled: boolean; activeSchedules: number; clockOffsetMs: number };
}

const MAX_TIMER_MS = 60_000;
/**
 * Occurrences per publishing transaction, and transactions at once. Measured with
 * bench/publish-lag.ts (1,000 due at once, 2 cores): 100 x 3 gave the lowest p50
 * and p99; one transaction of 1,000 commits nothing for ~55 ms.
 */
const PUBLISH_BATCH_OCCURRENCES = 100;
const PUBLISH_LANES = 3;
/** Schedules per page of a full re-read, and per next_run_at update. */
const RECONCILE_PAGE_ROWS = 500;

async function withinMs(ms: number, p: Promise<unknown> | undefined): Promise<void> {
  if (!p) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => {}), new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

function isTransient(err: unknown): boolean {
  const code = sqlState(err);
  return code === SQLSTATE.deadlockDetected || code === SQLSTATE.serializationFailure;
}

export function createEngine(deps: EngineDeps): Engine {
  const { db, boss, options: o } = deps;
  const log = deps.log.child({ component: 'engine' });
  const id = randomUUID();
  let offsetMs = 0;
  const now = deps.clock ?? (() => Date.now() + offsetMs);
  const set = createScheduleSet(log);
  const { slots, apply, forget } = set;
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  const intervals: NodeJS.Timeout[] = [];
  let inFlight: Promise<void> = Promise.resolve();
  let ticking = false;
  let retickWanted = false;
  let unlisten: (() => Promise<void>) | undefined;
  let stopping: Promise<void> | undefined;
  const pendingIds = new Set<number>();
  const lastRuns = createLastRunWriter(db, log);
  let pendingTimer: NodeJS.Timeout | undefined;

  function arm(): void {
    clearTimeout(timer);
    if (!running || !o.enabled) return;
    let min = Infinity;
    for (const slot of slots.values()) if (slot.fireAtMs < min) min = slot.fireAtMs;
    if (min === Infinity) return;
    timer = setTimeout(tick, Math.min(Math.max(min - now(), 0), MAX_TIMER_MS));
  }

  function tick(): void {
    if (!running) return;
    if (ticking) {
      retickWanted = true;
      return;
    }
    ticking = true;
    inFlight = publishDue()
      .catch((err) => log.error({ err }, 'publish pass failed'))
      .finally(() => {
        ticking = false;
        if (retickWanted) {
          retickWanted = false;
          setImmediate(tick);
        } else arm();
      });
  }

  /**
   * Collects every due occurrence of every schedule and publishes them in batches
   * of about PUBLISH_BATCH_OCCURRENCES, PUBLISH_LANES transactions at a time: the
   * first jobs of a burst commit after a fraction of the whole, and the lanes
   * overlap one transaction's commit with another's inserts. A schedule's due
   * occurrences stay in one batch (the overlap policy counts within it).
   */
  async function publishDue(): Promise<void> {
    const nowMs = now();
    const candidates = [...slots.values()].filter((slot) => slot.fireAtMs <= nowMs);
    let i = 0;
    let backlog = false;
    /** Plans the next batch only when a lane is free, so the first one is in flight while the rest is planned. */
    function nextBatch(): DueGroup[] {
      const batch: DueGroup[] = [];
      let size = 0;
      while (i < candidates.length && size < PUBLISH_BATCH_OCCURRENCES) {
        const slot = candidates[i++]!;
        if (slots.get(slot.s.id) !== slot) continue; // replaced or dropped meanwhile
        const g = planSlot(slot, nowMs, o.misfireGraceMs);
        if (!g) continue;
        if (g.decisions.length === MAX_DUE_PER_PASS) backlog = true;
        batch.push(g);
        size += g.decisions.length;
      }
      return batch;
    }
    const lane = async () => {
      for (let batch = nextBatch(); batch.length > 0; batch = nextBatch()) await publishGroups(batch);
    };
    // allSettled: the pass ends only when every lane has, even if one of them throws.
    const lanes = await Promise.allSettled(Array.from({ length: PUBLISH_LANES }, lane));
    if (backlog) retickWanted = true;
    // After the commits, not before: the jobs are out; this is status.
    void lastRuns.flush();
    for (const l of lanes) if (l.status === 'rejected') throw l.reason;
  }

  async function publishGroups(groups: DueGroup[]): Promise<void> {
    const decisions = groups.flatMap((g) => g.decisions);
    try {
      settle(groups, await publishBatch(db, boss, decisions));
    } catch (err) {
      if (groups.length > 1 && !isTransient(err) && (await pingDatabase(deps.sql)).ok) {
        // Postgres answers, so the batch itself failed: publish schedule by schedule
        // so that one schedule's bad data cannot hold up the others.
        log.warn({ err, schedules: groups.length }, 'batch failed with Postgres reachable; publishing schedule by schedule');
        for (const g of groups) {
          try {
            settle([g], await publishBatch(db, boss, g.decisions));
          } catch (e) {
            fail(e, [g.slot], g.decisions.length);
          }
        }
      } else fail(err, groups.map((g) => g.slot), decisions.length);
    }
  }

  function settle(groups: DueGroup[], published: PublishedOccurrence[]): void {
    const committedAtMs = now();
    for (const { slot, cursorMs } of groups) {
      slot.failures = 0;
      // A concurrent reconcile may have replaced the slot; only advance the one we read.
      if (slots.get(slot.s.id) !== slot) continue;
      slot.cursorMs = Math.max(slot.cursorMs, cursorMs);
      computeNext(slot);
    }
    lastRuns.add(published, new Map(groups.map((g) => [g.slot.s.id, g.slot.s.version])));
    const missed = published.filter((p) => p.state === 'missed').length;
    if (missed > 0) log.warn({ missed }, 'recorded missed occurrences');
    log.debug({ recorded: published.length }, 'published');
    deps.onPublished?.(published, committedAtMs);
  }

  /** Cursors stay put: after recovery the same occurrences come due again and follow their policies. */
  function fail(err: unknown, failed: Slot[], occurrences: number): void {
    const failures = Math.max(...failed.map((x) => ++x.failures));
    const backoffMs = isTransient(err) ? 20 : Math.min(250 * 2 ** Math.min(failures, 5), 5_000);
    const names = failed.length <= 5 ? failed.map((x) => x.s.name) : undefined;
    log.error({ err, occurrences, schedules: names ?? failed.length, failures, retryInMs: backoffMs }, 'could not publish due occurrences; will retry');
    for (const slot of failed) slot.fireAtMs = now() + backoffMs;
  }

  async function reconcile(): Promise<void> {
    const seen = new Set<number>();
    const nextRows: { id: number; next_at: string | null }[] = [];
    // Read in pages of one snapshot: 10,000 schedules read at once held ~40 MiB of rows
    // alive together and grew the engine's heap to ~180 MiB for a moment, kept as RSS.
    await db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute(async (trx) => {
        for (let afterId = 0; ; ) {
          const page = await listSchedulesAfter(trx, afterId, RECONCILE_PAGE_ROWS);
          for (const s of page) {
            seen.add(s.id);
            apply(s);
            const next = slots.get(s.id)?.next?.toISOString() ?? null;
            if ((s.nextRunAt?.toISOString() ?? null) !== next) nextRows.push({ id: s.id, next_at: next });
          }
          if (page.length < RECONCILE_PAGE_ROWS) break;
          afterId = page.at(-1)!.id;
        }
      });
    for (const known of set.knownIds()) if (!seen.has(known)) forget(known);
    if (o.enabled) for (let i = 0; i < nextRows.length; i += RECONCILE_PAGE_ROWS) await setNextRunAt(db, nextRows.slice(i, i + RECONCILE_PAGE_ROWS));
    arm();
  }

  async function reconcileIds(ids: number[]): Promise<void> {
    const rows = await db.withTables<SchedulerTables>().selectFrom('wombat.schedules').selectAll().where('id', 'in', ids).execute();
    const found = new Set(rows.map((r) => r.id));
    for (const r of rows) apply(rowToSchedule(r));
    for (const missing of ids.filter((x) => !found.has(x))) forget(missing);
    if (o.enabled) await setNextRunAt(db, rows.map((r) => ({ id: r.id, next_at: slots.get(r.id)?.next?.toISOString() ?? null })));
    arm();
  }

  function onNotify(payload: string): void {
    const scheduleId = Number(payload);
    if (!Number.isSafeInteger(scheduleId)) return;
    pendingIds.add(scheduleId);
    // A short debounce folds a burst of edits into one read.
    pendingTimer ??= setTimeout(() => {
      pendingTimer = undefined;
      const ids = [...pendingIds];
      pendingIds.clear();
      if (running) reconcileIds(ids).catch((err) => log.error({ err }, 'could not follow schedule changes; the periodic reconcile will'));
    }, 10);
  }

  async function beat(): Promise<void> {
    await lastRuns.flush(); // retries a write that failed after its pass
    const t0 = Date.now();
    const dbNow = await beatEngine(db, id);
    const t1 = Date.now();
    if (dbNow === undefined) {
      await insertEngine(db, { id, host: o.host, pid: o.pid, version: o.version, heartbeatIntervalMs: o.heartbeatIntervalMs, enabled: o.enabled });
      return;
    }
    // Fire on the database clock, so engines on hosts whose clocks differ agree on "now".
    if (t1 - t0 < 100) offsetMs = dbNow - (t0 + t1) / 2;
  }

  function every(ms: number, name: string, fn: () => Promise<unknown>): void {
    let busy = false;
    intervals.push(
      setInterval(() => {
        if (busy || !running) return;
        busy = true;
        fn()
          .catch((err) => log.warn({ err }, `${name} failed; will retry`))
          .finally(() => (busy = false));
      }, ms),
    );
  }

  return {
    id,
    async start() {
      await insertEngine(db, { id, host: o.host, pid: o.pid, version: o.version, heartbeatIntervalMs: o.heartbeatIntervalMs, enabled: o.enabled }).catch(
        (err: unknown) => {
          if (sqlState(err) === SQLSTATE.undefinedTable) {
            throw new AppError('not_migrated', 'the database has no scheduler tables: run migrations first (npm run migrate)', { cause: err });
          }
          throw err;
        },
      );
      await beat();
      for (const def of o.builtIns) await upsertBuiltInSchedule(db, def);
      running = true;
      await reconcile();
      let first = true;
      const listener = await deps.sql.listen(SCHEDULES_CHANNEL, onNotify, () => {
        // Called again after a reconnect: notifications may have been lost meanwhile.
        if (!first && running) reconcile().catch((err) => log.error({ err }, 'reconcile after reconnect failed'));
        first = false;
      });
      unlisten = () => listener.unlisten();
      every(o.reconcileIntervalMs, 'reconcile', reconcile);
      every(o.heartbeatIntervalMs, 'heartbeat', beat);
      let heldSeen = true;
      every(o.heldRunCheckMs, 'held run release', async () => {
        // Only queue-one schedules hold runs; one more look after the last of them goes.
        const queueOne = [...slots.values()].some((x) => x.s.overlap === 'queue-one');
        if (!queueOne && !heldSeen) return;
        heldSeen = (await releaseHeldRuns(db, boss)) > 0 || queueOne;
      });
      every(o.maintenanceIntervalMs, 'retention', () => purgeFinishedRuns(db, o));
      log.info({ engineId: id, enabled: o.enabled, schedules: slots.size, clockOffsetMs: Math.round(offsetMs) }, o.enabled ? 'engine started' : 'engine started with the scheduler disabled');
    },
    stop() {
      stopping ??= (async () => {
        running = false;
        clearTimeout(timer);
        clearTimeout(pendingTimer);
        for (const i of intervals) clearInterval(i);
        // With Postgres unreachable these would wait for a connection; the process is leaving anyway.
        await withinMs(2_000, unlisten?.());
        await inFlight;
        await withinMs(2_000, lastRuns.flush());
        await withinMs(
          2_000,
          markEngineStopped(db, id).catch((err) => log.warn({ err }, 'could not mark the engine stopped')),
        );
        log.info({ engineId: id }, 'engine stopped');
      })();
      return stopping;
    },
    reconcile,
    async runPass() {
      if (!running || !o.enabled) return;
      clearTimeout(timer);
      tick();
      await inFlight;
      await lastRuns.flush();
    },
    status: () => ({ enabled: o.enabled, activeSchedules: slots.size, clockOffsetMs: offsetMs }),
  };
}
