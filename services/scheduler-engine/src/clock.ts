import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import { AppError, SQLSTATE, sqlState } from '@wombat/core/platform';
import { type CoreTables } from '@wombat/core/tables';
import { beatEngine, insertEngine, markEngineStopped, type EngineRow } from '@wombat/core/schedules';

/** A timer set further ahead is cut to this, and set again when it fires. */
const MAX_TIMER_MS = 60_000;
/**
 * How long before an instant its pass starts, so that its transactions are
 * written when it comes and only their COMMIT is left: twice what the last
 * prepared pass needed (falling by a fifth a pass), within these bounds. The
 * upper bound is also how long an edit of a due schedule may wait for a commit.
 */
const MIN_LEAD_MS = 20;
const MAX_LEAD_MS = 500;
/** A heartbeat round trip longer than this says too little about the database's clock to correct ours. */
const MAX_OFFSET_ROUND_TRIP_MS = 100;

/**
 * The engine's sense of time: its heartbeat row, whose answer carries the
 * database's clock; "now" on that clock, so that engines on hosts whose clocks
 * differ agree; the one timer that wakes the publication pass; and the lead by
 * which a pass starts ahead of its instant.
 */
export interface EngineClock {
  /** Milliseconds since the epoch on the engine's clock: the database's, or the one a test gave. */
  now(): number;
  /** This host's clock corrected to the database's, whatever clock the engine was given. */
  databaseNow(): number;
  offsetMs(): number;
  /** Inserts the heartbeat row; a database without the scheduler tables is refused with `not_migrated`. */
  register(): Promise<void>;
  /** Beats the heartbeat row (inserting it again if it was purged) and takes the database's clock from the answer. */
  beat(): Promise<void>;
  markStopped(): Promise<void>;
  /** Calls `fire(instantMs)` the current lead before `instantMs` (at most MAX_TIMER_MS from now), replacing the timer set before. */
  arm(instantMs: number, fire: (instantMs: number) => void): void;
  disarm(): void;
  /** Whether a pass for `instantMs` should wait still: a cut timer, or one woken a little early. */
  tooEarly(instantMs: number): boolean;
  /** Adapts the lead to a pass prepared for `instantMs` whose transactions were ready at `readyMs`. */
  learnLead(instantMs: number, readyMs: number): void;
  /**
   * Resolves at `instantMs` on the engine's clock (a timer may wake a little early,
   * the heartbeat may nudge the clock), bounded in real time: a test's clock may stand still.
   */
  waitUntil(instantMs: number): Promise<void>;
}

export function createEngineClock(deps: { db: Kysely<CoreTables>; row: EngineRow; clock?: (() => number) | undefined }): EngineClock {
  const { db, row } = deps;
  let offsetMs = 0;
  let leadMs = MIN_LEAD_MS;
  let timer: NodeJS.Timeout | undefined;
  const databaseNow = () => Date.now() + offsetMs;
  const now = deps.clock ?? databaseNow;

  return {
    now,
    databaseNow,
    offsetMs: () => offsetMs,
    async register() {
      await insertEngine(db, row).catch((err: unknown) => {
        if (sqlState(err) === SQLSTATE.undefinedTable) {
          throw new AppError('not_migrated', 'the database has no scheduler tables: run migrations first (npm run migrate)', { cause: err });
        }
        throw err;
      });
    },
    async beat() {
      const t0 = Date.now();
      const dbNow = await beatEngine(db, row.id);
      const t1 = Date.now();
      // The row was deleted meanwhile (by hand, or by retention after days of silence): insert it again.
      if (dbNow === undefined) return insertEngine(db, row);
      if (t1 - t0 < MAX_OFFSET_ROUND_TRIP_MS) offsetMs = dbNow - (t0 + t1) / 2;
    },
    markStopped: () => markEngineStopped(db, row.id),
    arm(instantMs, fire) {
      clearTimeout(timer);
      timer = setTimeout(() => fire(instantMs), Math.min(Math.max(instantMs - leadMs - now(), 0), MAX_TIMER_MS));
    },
    disarm: () => clearTimeout(timer),
    tooEarly: (instantMs) => instantMs - now() > leadMs,
    learnLead(instantMs, readyMs) {
      // What the pass needed before its instant: the lead less what was left of it.
      const neededMs = leadMs - (instantMs - readyMs);
      leadMs = Math.round(Math.min(Math.max(2 * neededMs, 0.8 * leadMs, MIN_LEAD_MS), MAX_LEAD_MS));
    },
    async waitUntil(instantMs) {
      const giveUpAt = performance.now() + Math.max(instantMs - now(), 0) + MIN_LEAD_MS;
      for (let left = instantMs - now(); left > 0 && performance.now() < giveUpAt; left = instantMs - now()) await sleep(Math.ceil(left));
    },
  };
}
