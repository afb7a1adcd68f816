import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import {
  AppError,
  createLoopSupervisor,
  listSchedulesAfter,
  pingDatabase,
  reconcileRuns,
  releaseHeldRuns,
  rowToSchedule,
  SCHEDULES_CHANNEL,
  SQLSTATE,
  sqlState,
  upsertBuiltInSchedule,
  deleteBuiltInSchedule,
  type CoreTables,
  type Logger,
  type PgBoss,
  type ScheduleDefinition,
  type SchedulerTables,
  type Sql,
} from '@wombat/core';
import { purgeFinishedRuns } from './housekeeping.ts';
import { publishBatch, type Decision, type PublishCommit, type PublishedOccurrence } from './publish.ts';
import { MAX_DUE_PER_PASS, computeNext, planSlot, type DueGroup, type Slot } from './due.ts';
import { createLastRunWriter } from './last-runs.ts';
import { createScheduleSet } from './schedule-set.ts';
import { beatEngine, insertEngine, markEngineStopped, setNextRunAt } from './statements.ts';

export interface EngineOptions {
  enabled: boolean;
  /** Shown in the heartbeat row: where this engine runs. */
  host: string;
  pid: number;
  builtIns: ScheduleDefinition[];
  /** Built-ins the configuration turns off: logged once with the reason, a stale row removed. */
  disabledBuiltIns?: { name: string; reason: string }[];
  version: string;
  reconcileIntervalMs: number;
  heartbeatIntervalMs: number;
  misfireGraceMs: number;
  heldRunCheckMs: number;
  /** How often one engine (advisory lock) reconciles unfinished runs with pg-boss and the worker registry. */
  runReconcileIntervalMs: number;
  maintenanceIntervalMs: number;
  taskResultTtlDays: number;
  runRetentionDays: number;
  /** A loop making no progress this long (hung rounds) calls EngineDeps.onStall (LOOP_STALL_EXIT_MS); 0 or unset: never. */
  loopStallExitMs?: number;
}

export interface EngineDeps {
  db: Kysely<CoreTables>;
  /** The postgres.js client under `db`. */
  sql: Sql;
  /** For LISTEN: a client on the session address (DATABASE_SESSION_URL); unset: `sql`. */
  listenSql?: Sql;
  boss: PgBoss;
  log: Logger;
  options: EngineOptions;
  /** Milliseconds since the epoch; default: this host's clock corrected to the database clock. */
  clock?: () => number;
  /** Test hook: awaited before each publishing transaction (to slow one engine down). */
  beforePublish?: (decisions: Decision[]) => Promise<void>;
  /** Called after each committed batch with the occurrences this engine recorded and the commit instant. */
  onPublished?: (occurrences: PublishedOccurrence[], committedAtMs: number) => void;
  /** A loop cannot make progress: the service stops and exits non-zero. */
  onStall?: (info: { loop: string; failingMs: number }) => void;
  /** Whether the database answers a connection of its own: tells a stuck pool from a database that is down. */
  probe?: () => Promise<boolean>;
  /** Runs this engine's reconciler ended failed with worker_lost (their last attempt was lost). */
  onRunsLost?: (runIds: string[]) => void;
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
 * and p99; one transaction of 1,000 commits nothing for ~55 ms. A pass prepared
 * ahead of its instant splits its occurrences over the lanes instead, so that
 * every transaction is ready at the instant.
 */
const PUBLISH_BATCH_OCCURRENCES = 100;
const PUBLISH_LANES = 3;
/**
 * How long before an instant its pass starts, so that its transactions are
 * written when it comes and only their COMMIT is left: twice what the last
 * prepared pass needed (falling by a fifth a pass), within these bounds. The
 * upper bound is also how long an edit of a due schedule may wait for a commit.
 */
const MIN_LEAD_MS = 20;
const MAX_LEAD_MS = 500;
/** A publish pass running longer is abandoned so the next can start (exactly-once holds: the database dedupes). */
const PUBLISH_PASS_DEADLINE_MS = 30_000;
/** Deadline of a periodic round: two intervals, within 5 s..60 s. */
const roundDeadlineMs = (intervalMs: number) => Math.min(Math.max(2 * intervalMs, 5_000), 60_000);
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
  let leadMs = MIN_LEAD_MS;
  const loops = createLoopSupervisor({
    log,
    stallMs: o.loopStallExitMs ?? 0,
    onStall: (info) => deps.onStall?.(info),
    ...(deps.probe ? { probe: deps.probe } : {}),
  });

  function arm(): void {
    clearTimeout(timer);
    if (!running || !o.enabled) return;
    // Occurrences missed before a schedule change are recorded by the next pass: run one now.
    let min = set.hasMissedOnChange() ? now() : Infinity;
    for (const slot of slots.values()) if (slot.fireAtMs < min) min = slot.fireAtMs;
    if (min === Infinity) return;
    const instantMs = min;
    timer = setTimeout(() => tick(instantMs), Math.min(Math.max(min - leadMs - now(), 0), MAX_TIMER_MS));
  }

  /** `instantMs`: the fire instant the pass is prepared for (the timer's); unset: now. */
  function tick(instantMs?: number): void {
    if (!running) return;
    if (ticking) {
      retickWanted = true;
      return;
    }
    // A timer cut to MAX_TIMER_MS, or woken a little early: not yet time to prepare.
    if (instantMs !== undefined && instantMs - now() > leadMs) return arm();
    ticking = true;
    // The supervisor logs a failed pass and abandons one past its deadline.
    inFlight = loops
      .round('publish', () => publishDue(instantMs), { roundTimeoutMs: PUBLISH_PASS_DEADLINE_MS })
      .then(() => {})
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
   *
   * A pass for an instant still to come (the timer starts it leadMs early) plans
   * as of that instant, writes its transactions and commits them when it comes:
   * the jobs appear then, not a round of statements later.
   */
  async function publishDue(instantMs?: number): Promise<void> {
    const startedMs = now();
    const nowMs = Math.max(startedMs, instantMs ?? 0);
    const ahead = nowMs > startedMs;
    let readyMs = -Infinity;
    const commit: PublishCommit = {
      atMs: nowMs,
      async wait(recorded: number) {
        // A batch another engine recorded first waited for that engine's commit: not a measure of this one's work.
        if (recorded > 0) readyMs = Math.max(readyMs, now());
        // Until the instant on the engine's clock (a timer may wake a little early, the
        // heartbeat may nudge the clock), bounded in real time: a test's clock may stand still.
        const giveUpAt = performance.now() + Math.max(nowMs - now(), 0) + MIN_LEAD_MS;
        for (let left = nowMs - now(); left > 0 && performance.now() < giveUpAt; left = nowMs - now()) await sleep(Math.ceil(left));
      },
    };
    const changed = set.takeMissedOnChange();
    if (changed.length > 0) {
      try {
        const recorded = await publishBatch(db, boss, changed);
        if (recorded.length > 0) log.warn({ missed: recorded.length }, 'recorded occurrences missed before a schedule change');
      } catch (err) {
        log.error({ err, occurrences: changed.length }, 'could not record occurrences missed before a schedule change');
      }
    }
    const candidates = [...slots.values()].filter((slot) => slot.fireAtMs <= nowMs);
    const batchOccurrences = ahead ? Math.max(PUBLISH_BATCH_OCCURRENCES, Math.ceil(candidates.length / PUBLISH_LANES)) : PUBLISH_BATCH_OCCURRENCES;
    let i = 0;
    let backlog = false;
    /** Plans the next batch only when a lane is free, so the first one is in flight while the rest is planned. */
    function nextBatch(): DueGroup[] {
      const batch: DueGroup[] = [];
      let size = 0;
      while (i < candidates.length && size < batchOccurrences) {
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
      for (let batch = nextBatch(); batch.length > 0; batch = nextBatch()) await publishGroups(batch, ahead ? commit : undefined);
    };
    // allSettled: the pass ends only when every lane has, even if one of them throws.
    const lanes = await Promise.allSettled(Array.from({ length: PUBLISH_LANES }, lane));
    if (ahead && readyMs > -Infinity) {
      // What this pass needed before its instant: the lead less what was left of it.
      const neededMs = leadMs - (nowMs - readyMs);
      leadMs = Math.round(Math.min(Math.max(2 * neededMs, 0.8 * leadMs, MIN_LEAD_MS), MAX_LEAD_MS));
    }
    if (backlog) retickWanted = true;
    // After the commits, not before: the jobs are out; this is status.
    void lastRuns.flush();
    for (const l of lanes) if (l.status === 'rejected') throw l.reason;
  }

  async function publishGroups(groups: DueGroup[], commit?: PublishCommit): Promise<void> {
    const decisions = groups.flatMap((g) => g.decisions);
    try {
      await deps.beforePublish?.(decisions);
      const published = await publishBatch(db, boss, decisions, commit);
      if (published.stale) {
        log.info({ scheduleIds: published.stale }, 'schedules changed since this engine read them; nothing published from the old definitions');
        const ids = published.stale;
        // Re-read them before the cursor matters again (notifications may be slower than this).
        queueMicrotask(() => void reconcileIds(ids).catch((err) => log.error({ err }, 'could not re-read changed schedules')));
      }
      settle(groups, published);
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
    const names = new Map(groups.map((g) => [g.slot.s.id, g.slot.s]));
    for (const p of published) {
      if (p.state !== 'queued' && p.state !== 'held') continue;
      const s = names.get(p.scheduleId);
      // A per-second canary would flood the journal at info.
      const level = s?.job === 'canary' ? 'debug' : 'info';
      log[level](
        { schedule: s?.name, scheduleId: p.scheduleId, scheduledFor: p.scheduledFor.toISOString(), runId: p.runId, state: p.state, latenessMs: Math.round(committedAtMs - p.scheduledFor.getTime()) },
        p.state === 'held' ? 'held (overlap queue-one)' : 'published',
      );
    }
    const missed = published.filter((p) => p.state === 'missed').length;
    if (missed > 0) log.warn({ missed }, 'recorded missed occurrences');
    const skipped = published.filter((p) => p.state === 'skipped').length;
    if (skipped > 0) log.info({ skipped }, 'recorded skipped occurrences (overlap)');
    deps.onPublished?.(published, committedAtMs);
  }

  /** Cursors stay put: after recovery the same occurrences come due again and follow their policies. */
  function fail(err: unknown, failed: Slot[], occurrences: number): void {
    const failures = Math.max(...failed.map((x) => ++x.failures));
    // Capped at 2 s: after an outage the engine publishes again within about that long.
    const backoffMs = isTransient(err) ? 20 : Math.min(250 * 2 ** Math.min(failures, 5), 2_000);
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

  /** A periodic loop whose rounds have a deadline: one that hangs is abandoned and the next runs. */
  function every(ms: number, name: string, fn: () => Promise<unknown>): void {
    loops.every(name, ms, () => (running ? fn() : Promise.resolve()), { roundTimeoutMs: roundDeadlineMs(ms) });
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
      for (const off of o.disabledBuiltIns ?? []) {
        const removed = await deleteBuiltInSchedule(db, off.name);
        log.info({ schedule: off.name, removed }, `built-in schedule ${off.name} is off: ${off.reason}`);
      }
      running = true;
      await reconcile();
      let first = true;
      const listener = await (deps.listenSql ?? deps.sql).listen(SCHEDULES_CHANNEL, onNotify, () => {
        // Called again after a reconnect: notifications may have been lost meanwhile.
        if (!first && running) reconcile().catch((err) => log.error({ err }, 'reconcile after reconnect failed'));
        first = false;
      });
      unlisten = () => listener.unlisten();
      every(o.reconcileIntervalMs, 'reconcile', reconcile);
      every(o.heartbeatIntervalMs, 'heartbeat', beat);
      // Every round, whatever schedules this engine knows: a held run whose schedule was paused,
      // deleted or edited must still end skipped or run (the lookup is one index scan of
      // wombat.runs_active when nothing is held).
      every(o.heldRunCheckMs, 'held run release', async () => {
        for (const r of await releaseHeldRuns(db, boss)) {
          const fields = { scheduleId: r.scheduleId, schedule: slots.get(r.scheduleId)?.s.name, runId: r.id };
          if (r.state === 'queued') log.info(fields, 'released held run (overlap queue-one)');
          else log.info({ ...fields, reason: r.reason }, 'held run skipped');
        }
      });
      // The database's return from an outage, as this engine saw it: the first pass after a gap
      // of more than three intervals (or this engine's first pass: it cannot know what came before).
      let lastPassMs: number | undefined;
      let outageEndedAt = new Date(Date.now() + offsetMs);
      every(o.runReconcileIntervalMs, 'run reconciliation', async () => {
        const startedMs = performance.now();
        if (lastPassMs !== undefined && startedMs - lastPassMs > Math.max(3 * o.runReconcileIntervalMs, 5_000)) {
          outageEndedAt = new Date(Date.now() + offsetMs);
          log.info({ gapMs: Math.round(startedMs - lastPassMs) }, 'database reachable again: worker heartbeats are judged from now');
        }
        const r = await reconcileRuns(db, boss, { outageEndedAt });
        lastPassMs = startedMs;
        if (!r) return; // another engine holds the lock
        for (const id of r.lost) log.warn({ runId: id }, 'run lost: failed with worker_lost');
        if (r.lost.length > 0) deps.onRunsLost?.(r.lost);
        for (const id of r.retrying) log.warn({ runId: id }, 'run attempt lost: retrying');
        if (r.settled.length > 0) log.info({ runIds: r.settled }, 'runs took the outcome pg-boss recorded for their jobs');
        if (r.jobsSettled.length > 0) log.info({ runIds: r.jobsSettled }, 'jobs settled in pg-boss as their runs ended (the worker could not settle them)');
      });
      every(o.maintenanceIntervalMs, 'retention', () => purgeFinishedRuns(db, o));
      log.info({ engineId: id, enabled: o.enabled, schedules: slots.size, clockOffsetMs: Math.round(offsetMs) }, o.enabled ? 'engine started' : 'engine started with the scheduler disabled');
      if (o.enabled) {
        for (const slot of slots.values()) {
          log.info({ schedule: slot.s.name, scheduleId: slot.s.id, job: slot.s.job, nextRunAt: slot.next?.toISOString() ?? null }, 'schedule loaded');
        }
      }
    },
    stop() {
      stopping ??= (async () => {
        running = false;
        clearTimeout(timer);
        clearTimeout(pendingTimer);
        for (const i of intervals) clearInterval(i);
        loops.stop();
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
