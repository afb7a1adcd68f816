import { sql, type Kysely } from 'kysely';
import { blockBudget, checkSpec, emptyBudget, settleSlots, takeSlots, type BlockKind, type BudgetSpec, type BudgetState, type TakeResult } from './budget-math.ts';

/**
 * Where request budgets live. `postgres`: one row per budget in
 * wombat.exchange_budgets, shared by every process on every host that uses the
 * database (workers, scripts, fan-out children). `local`: this process only, for
 * a script run without a database.
 */
export interface BudgetStore {
  readonly kind: 'postgres' | 'local';
  take(name: string, spec: BudgetSpec, n: number): Promise<TakeResult>;
  settle(name: string, stamp: number, count: number, opts?: { unused?: boolean }): Promise<void>;
  block(name: string, kind: BlockKind, ms: number, code: string, message: string): Promise<void>;
}

export function createLocalBudgetStore(opts: { clock?: () => number } = {}): BudgetStore {
  const clock = opts.clock ?? Date.now;
  const budgets = new Map<string, BudgetState>();
  const state = (name: string) => {
    let s = budgets.get(name);
    if (!s) budgets.set(name, (s = emptyBudget()));
    return s;
  };
  return {
    kind: 'local',
    async take(name, spec, n) {
      checkSpec(spec);
      return takeSlots(state(name), spec, n, clock());
    },
    async settle(name, stamp, count, o = {}) {
      settleSlots(state(name), stamp, count, clock(), o.unused ?? false);
    },
    async block(name, kind, ms, code, message) {
      blockBudget(state(name), kind, ms, code, message, clock());
    },
  };
}

interface TakeRow {
  granted: number;
  stamp: number;
  wait_ms: number;
  banned_until_ms: number;
  ban_code: string | null;
  ban_message: string | null;
  paused_until_ms: number;
  pause_code: string | null;
  pause_message: string | null;
}

/** Budgets in PostgreSQL: each call is one statement (a function holding the budget's row lock for microseconds). */
export function createPgBudgetStore(db: Kysely<any>): BudgetStore { // eslint-disable-line @typescript-eslint/no-explicit-any
  return {
    kind: 'postgres',
    async take(name, spec, n) {
      checkSpec(spec);
      const limits = spec.limits.map((l) => Math.floor(l.limit));
      const windows = spec.limits.map((l) => Math.ceil(l.windowMs));
      const r = await sql<TakeRow>`select * from wombat.budget_take(${name}, ${limits}::int[], ${windows}::int[], ${n}::int, ${Math.ceil(spec.holdMs)}::int, ${Math.ceil(spec.marginMs ?? 5)}::int, ${Math.ceil(spec.pollMs ?? 25)}::int)`.execute(db);
      const row = r.rows[0]!;
      if (row.granted > 0) return { granted: row.granted, stamp: Number(row.stamp), waitMs: 0 };
      const out: TakeResult = { granted: 0, stamp: 0, waitMs: Number(row.wait_ms) };
      if (row.ban_code !== null) out.ban = { untilMs: Number(row.banned_until_ms), code: row.ban_code, message: row.ban_message ?? '' };
      if (row.pause_code !== null) out.pause = { untilMs: Number(row.paused_until_ms), code: row.pause_code, message: row.pause_message ?? '' };
      return out;
    },
    async settle(name, stamp, count, o = {}) {
      await sql`select wombat.budget_settle(${name}, ${stamp}::bigint, ${count}::int, ${o.unused ?? false})`.execute(db);
    },
    async block(name, kind, ms, code, message) {
      await sql`select wombat.budget_block(${name}, ${kind}, ${Math.ceil(ms)}::bigint, ${code}, ${message})`.execute(db);
    },
  };
}
