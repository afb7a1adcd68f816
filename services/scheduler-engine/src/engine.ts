import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { createLoopSupervisor, type Logger, type PgBoss, type Sql, withDeadline } from '@wombat/core/platform';
import { type ScheduleDefinition } from '@wombat/core/schedules';
import { type CoreTables } from '@wombat/core/tables';
import { seedBuiltIns } from './built-ins.ts';
import { createEngineClock } from './clock.ts';
import { startHousekeeping } from './housekeeping-loops.ts';
import { createLastRunWriter } from './last-runs.ts';
import { createEngineMode } from './mode.ts';
import { createPublicationPass } from './publication-pass.ts';
import type { Decision, PublishedOccurrence } from './publish.ts';
import { createScheduleMirror } from './schedule-mirror.ts';
import { createScheduleSet } from './schedule-set.ts';

export interface EngineOptions {
  enabled: boolean;
  /** Shown in the heartbeat row: where this engine runs. */
  host: string;
  pid: number;
  builtIns: ScheduleDefinition[];
  /** Ordinary schedules created once when none of their name exists (the collection reports). */
  defaultSchedules?: ScheduleDefinition[];
  /** Built-ins the configuration turns off: logged once with the reason, a stale row removed. */
  disabledBuiltIns?: { name: string; reason: string }[];
  version: string;
  reconcileIntervalMs: number;
  heartbeatIntervalMs: number;
  misfireGraceMs: number;
  heldRunCheckMs: number;
  /** How often one engine (advisory lock) reconciles unfinished runs with pg-boss and the worker registry. */
  runReconcileIntervalMs: number;
  /** A running job's pg-boss heartbeat older than this has lost its worker (JOB_HEARTBEAT_S; default 15). */
  jobHeartbeatSeconds?: number;
  /** How often one engine (advisory lock) folds the run roll-ups' deltas (ENGINE_RUN_COUNTS_FOLD_MS; default 5000). */
  runCountsFoldMs?: number;
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

/** Each step of stop waits at most this long on Postgres: unreachable, it would wait for a connection, and the process is leaving anyway. */
const STOP_STEP_MS = 2_000;

/**
 * The engine, wired from its parts: the schedule mirror (wombat.schedules, read
 * and followed), the publication pass (due occurrences to jobs), the clock
 * (heartbeat, database time, the pass's timer) and the housekeeping loops. Its
 * `mode` (mode.ts) is the one state they share.
 */
export function createEngine(deps: EngineDeps): Engine {
  const { db, boss, options: o } = deps;
  const log = deps.log.child({ component: 'engine' });
  const id = randomUUID();
  const mode = createEngineMode();
  const following = () => mode.following();
  const clock = createEngineClock({ db, clock: deps.clock, row: { id, host: o.host, pid: o.pid, version: o.version, heartbeatIntervalMs: o.heartbeatIntervalMs, enabled: o.enabled } });
  const schedules = createScheduleSet(log);
  const lastRuns = createLastRunWriter(db, log);
  const loops = createLoopSupervisor({ log, stallMs: o.loopStallExitMs ?? 0, onStall: (info) => deps.onStall?.(info), ...(deps.probe ? { probe: deps.probe } : {}) });
  const pass = createPublicationPass({ db, sql: deps.sql, boss, log, mode, clock, schedules, lastRuns, loops, options: o, hooks: deps, reread: (ids) => mirror.reread(ids), onWaiting: () => housekeeping?.releaseWaitingNow() });
  const mirror = createScheduleMirror({ db, listenSql: deps.listenSql ?? deps.sql, log, schedules, enabled: o.enabled, following, onChange: () => pass.arm() });
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  let housekeeping: ReturnType<typeof startHousekeeping> | undefined;

  async function startUp(): Promise<void> {
    mode.setMode('starting');
    for (const step of [() => clock.register(), () => clock.beat(), () => seedBuiltIns(db, log, o.builtIns, o.disabledBuiltIns ?? [], o.defaultSchedules ?? [])]) {
      await step();
      if (mode.mode !== 'starting') return; // stopped meanwhile
    }
    mode.setMode('running');
    await mirror.reconcile();
    await mirror.listen();
    if (!following()) return mirror.stop(STOP_STEP_MS);
    housekeeping = startHousekeeping({ db, boss, log, loops, options: o, clock, mirror, schedules, lastRuns, following, ...(deps.onRunsLost ? { onRunsLost: deps.onRunsLost } : {}) });
    log.info({ engineId: id, enabled: o.enabled, schedules: schedules.slots.size, clockOffsetMs: Math.round(clock.offsetMs()) }, o.enabled ? 'engine started' : 'engine started with the scheduler disabled');
    if (!o.enabled) return;
    for (const slot of schedules.slots.values()) {
      log.info({ schedule: slot.s.name, scheduleId: slot.s.id, job: slot.s.job, nextRunAt: slot.next?.toISOString() ?? null }, 'schedule loaded');
    }
  }

  return {
    id,
    start() {
      const run = startUp();
      starting ??= run;
      return run;
    },
    stop() {
      stopping ??= (async () => {
        mode.setMode('stopping');
        // A start in progress gives up after its current step, whose writes land before the row is marked stopped.
        if (starting) await withDeadline(starting, STOP_STEP_MS, 'start in progress').catch(() => {});
        clock.disarm();
        loops.stop();
        await mirror.stop(STOP_STEP_MS);
        await pass.settled();
        await withDeadline(lastRuns.flush(), STOP_STEP_MS, 'recording last occurrences').catch((err: unknown) => log.warn({ err }, 'could not record the last occurrences'));
        await withDeadline(clock.markStopped(), STOP_STEP_MS, 'marking the engine stopped').catch((err: unknown) => log.warn({ err }, 'could not mark the engine stopped'));
        mode.setMode('stopped');
        log.info({ engineId: id }, 'engine stopped');
      })();
      return stopping;
    },
    reconcile: () => mirror.reconcile(),
    async runPass() {
      if (!following() || !o.enabled) return;
      clock.disarm();
      pass.tick();
      await pass.settled();
      await lastRuns.flush();
    },
    status: () => ({ enabled: o.enabled, activeSchedules: schedules.slots.size, clockOffsetMs: clock.offsetMs() }),
  };
}
