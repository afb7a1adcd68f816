import type { Kysely } from 'kysely';
import { backoffMs, type Logger, type LoopSupervisor, type PgBoss, pingDatabase, type Sql, SQLSTATE, sqlState } from '@wombat/core/platform';
import { type CoreTables } from '@wombat/core/tables';
import type { EngineClock } from './clock.ts';
import { MAX_DUE_PER_PASS, computeNext, planSlot, type DueGroup, type Slot } from './due.ts';
import type { LastRunWriter } from './last-runs.ts';
import type { EngineModeMachine } from './mode.ts';
import { publishBatch, type Decision, type PublishCommit, type PublishedOccurrence } from './publish.ts';
import type { ScheduleSet } from './schedule-set.ts';

/**
 * Occurrences per publishing transaction, and transactions at once. Measured with
 * bench/publish-lag.ts (1,000 due at once, 2 cores): 100 x 3 gave the lowest p50
 * and p99; one transaction of 1,000 commits nothing for ~55 ms. A pass prepared
 * ahead of its instant splits its occurrences over the lanes instead, so that
 * every transaction is ready at the instant.
 */
const PUBLISH_BATCH_OCCURRENCES = 100;
const PUBLISH_LANES = 3;
/** A publish pass running longer is abandoned so the next can start (exactly-once holds: the database dedupes). */
const PUBLISH_PASS_DEADLINE_MS = 30_000;
/** A deadlock or serialization failure clears at once: retried almost immediately. */
const TRANSIENT_RETRY_MS = 20;
/**
 * Retry of a schedule whose publication failed: 0.5 s, 1 s, then 2 s, so that after
 * an outage the engine publishes again within about 2 s. No jitter: each engine
 * retries only its own passes, and engines retrying together meet at the unique
 * index, which settles who publishes.
 */
const PUBLISH_BACKOFF = { baseMs: 500, maxMs: 2_000, jitter: 'none' } as const;

export interface PublicationPassDeps {
  db: Kysely<CoreTables>;
  /** To tell a batch's own failure from an unreachable database. */
  sql: Sql;
  boss: PgBoss;
  log: Logger;
  mode: EngineModeMachine;
  clock: EngineClock;
  schedules: ScheduleSet;
  lastRuns: LastRunWriter;
  loops: LoopSupervisor;
  options: { enabled: boolean; misfireGraceMs: number };
  /** The engine's test and observation hooks (EngineDeps). */
  hooks: {
    beforePublish?: ((decisions: Decision[]) => Promise<void>) | undefined;
    onPublished?: ((occurrences: PublishedOccurrence[], committedAtMs: number) => void) | undefined;
  };
  /** Re-reads schedules a transaction found changed since this engine read them. */
  reread(ids: number[]): Promise<void>;
  /** Told when a batch recorded runs waiting for their prerequisites (they may be released at once). */
  onWaiting(): void;
}

export interface PublicationPass {
  /** Sets the clock's timer for the earliest fire instant (now, when a schedule change left occurrences to record). */
  arm(): void;
  /** Starts a pass for `instantMs` (unset: now); with one in flight, another follows it. */
  tick(instantMs?: number): void;
  /** Resolves when the pass in flight (if any) has ended or been abandoned. */
  settled(): Promise<void>;
}

function isTransient(err: unknown): boolean {
  const code = sqlState(err);
  return code === SQLSTATE.deadlockDetected || code === SQLSTATE.serializationFailure;
}

/**
 * Due occurrences to pg-boss jobs. Collects every due occurrence of every schedule
 * and publishes them in batches of about PUBLISH_BATCH_OCCURRENCES, PUBLISH_LANES
 * transactions at a time: the first jobs of a burst commit after a fraction of the
 * whole, and the lanes overlap one transaction's commit with another's inserts. A
 * schedule's due occurrences stay in one batch (the overlap policy counts within it).
 *
 * A pass for an instant still to come (the clock's timer starts it a lead early)
 * plans as of that instant, writes its transactions and commits them when it
 * comes: the jobs appear then, not a round of statements later.
 */
export function createPublicationPass(deps: PublicationPassDeps): PublicationPass {
  const { db, boss, log, mode, clock, schedules, lastRuns } = deps;
  const { slots } = schedules;
  let inFlight: Promise<void> = Promise.resolve();

  function arm(): void {
    if (!mode.following() || !deps.options.enabled) return clock.disarm();
    let min = schedules.hasMissedOnChange() ? clock.now() : Infinity;
    for (const slot of slots.values()) if (slot.fireAtMs < min) min = slot.fireAtMs;
    if (min === Infinity) return clock.disarm();
    clock.arm(min, tick);
  }

  function tick(instantMs?: number): void {
    if (mode.mode === 'publishing') return mode.setMode('publishing-again');
    if (mode.mode !== 'running') return;
    if (instantMs !== undefined && clock.tooEarly(instantMs)) return arm();
    mode.setMode('publishing');
    // The supervisor logs a failed pass and abandons one past its deadline.
    inFlight = deps.loops
      .round('publish', () => publishDue(instantMs), { roundTimeoutMs: PUBLISH_PASS_DEADLINE_MS })
      .then(() => {
        const again = mode.mode === 'publishing-again';
        if (!again && mode.mode !== 'publishing') return; // stopping: nothing follows
        mode.setMode('running');
        if (again) setImmediate(tick);
        else arm();
      });
  }

  async function publishDue(instantMs?: number): Promise<void> {
    const startedMs = clock.now();
    const nowMs = Math.max(startedMs, instantMs ?? 0);
    const ahead = nowMs > startedMs;
    let readyMs = -Infinity;
    const commit: PublishCommit = {
      atMs: nowMs,
      async wait(recorded: number) {
        // A batch another engine recorded first waited for that engine's commit: not a measure of this one's work.
        if (recorded > 0) readyMs = Math.max(readyMs, clock.now());
        await clock.waitUntil(nowMs);
      },
    };
    const changed = schedules.takeMissedOnChange();
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
        const g = planSlot(slot, nowMs, deps.options.misfireGraceMs);
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
    if (ahead && readyMs > -Infinity) clock.learnLead(nowMs, readyMs);
    if (backlog && mode.mode === 'publishing') mode.setMode('publishing-again');
    // After the commits, not before: the jobs are out; this is status.
    void lastRuns.flush();
    for (const l of lanes) if (l.status === 'rejected') throw l.reason;
  }

  async function publishGroups(groups: DueGroup[], commit?: PublishCommit): Promise<void> {
    const decisions = groups.flatMap((g) => g.decisions);
    try {
      await deps.hooks.beforePublish?.(decisions);
      const published = await publishBatch(db, boss, decisions, commit);
      if (published.stale) {
        log.info({ scheduleIds: published.stale }, 'schedules changed since this engine read them; nothing published from the old definitions');
        const ids = published.stale;
        // Re-read them before the cursor matters again (notifications may be slower than this).
        queueMicrotask(() => void deps.reread(ids).catch((err) => log.error({ err }, 'could not re-read changed schedules')));
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
    const committedAtMs = clock.now();
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
      if (p.state !== 'queued' && p.state !== 'held' && p.state !== 'waiting') continue;
      const s = names.get(p.scheduleId);
      // A per-second canary would flood the journal at info.
      const level = s?.job === 'canary' ? 'debug' : 'info';
      log[level](
        { schedule: s?.name, scheduleId: p.scheduleId, scheduledFor: p.scheduledFor.toISOString(), runId: p.runId, state: p.state, latenessMs: Math.round(committedAtMs - p.scheduledFor.getTime()) },
        p.state === 'held' ? 'held (overlap queue-one)' : p.state === 'waiting' ? 'waiting for its prerequisites' : 'published',
      );
    }
    const missed = published.filter((p) => p.state === 'missed').length;
    if (missed > 0) log.warn({ missed }, 'recorded missed occurrences');
    if (published.some((p) => p.state === 'waiting')) deps.onWaiting();
    const skipped = published.filter((p) => p.state === 'skipped').length;
    if (skipped > 0) log.info({ skipped }, 'recorded skipped occurrences (overlap)');
    deps.hooks.onPublished?.(published, committedAtMs);
  }

  /** Cursors stay put: after recovery the same occurrences come due again and follow their policies. */
  function fail(err: unknown, failed: Slot[], occurrences: number): void {
    const failures = Math.max(...failed.map((x) => ++x.failures));
    const retryInMs = isTransient(err) ? TRANSIENT_RETRY_MS : backoffMs(failures, PUBLISH_BACKOFF);
    const names = failed.length <= 5 ? failed.map((x) => x.s.name) : undefined;
    log.error({ err, occurrences, schedules: names ?? failed.length, failures, retryInMs }, 'could not publish due occurrences; will retry');
    for (const slot of failed) slot.fireAtMs = clock.now() + retryInMs;
  }

  return { arm, tick, settled: () => inFlight };
}
