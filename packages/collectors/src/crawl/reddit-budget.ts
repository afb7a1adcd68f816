import { sql } from 'kysely';
import { sleep } from '../rate-limit.ts';
import type { CrawlDb } from './store.ts';

/**
 * Reddit's request budget, shared by every process through PostgreSQL. Reddit
 * states it on each answer (X-Ratelimit-Remaining, -Used, -Reset seconds until
 * the window ends); a process books one request before sending it and stores
 * what the answer says, so processes together never spend more than Reddit
 * allows. Without a database the same rules hold inside the process only.
 *
 * Times are the database's (clock_timestamp()), never a process's: processes
 * whose clocks differ still agree when a window ends. A window nobody knows yet
 * (no row, or the last one has ended) is not free for all: the first request
 * books it (remaining -1, "one request out to learn the budget", held until its
 * answer or `probeHoldMs`), and the others wait for what that answer says, as
 * the exchange budgets book their first request.
 */
export interface RedditBudget {
  /** Resolves when a request may be sent (waiting for the window to reset when none is left). */
  take(signal?: AbortSignal): Promise<void>;
  /** Records what an answer's headers say (an answer without them frees the window for the next request). */
  observe(h: { remaining?: number; used?: number; resetSeconds?: number }): Promise<void>;
  /** A 429: nothing is sent before `resetSeconds` from now. */
  exhausted(resetSeconds: number): Promise<void>;
}

/** Windows whose reset times differ by less than this are the same window (the header has whole seconds). */
const SAME_WINDOW_MS = 2_000;
/** `remaining` of a window booked by its first request, whose answer has not come yet. */
const PROBING = -1;

export function redditBudget(o: { db?: CrawlDb; clientKey: string; now?: () => number; maxWaitMs?: number; probeHoldMs?: number }): RedditBudget {
  const now = o.now ?? Date.now;
  const maxWaitMs = o.maxWaitMs ?? 15 * 60_000;
  const probeHoldMs = o.probeHoldMs ?? 30_000;
  let local: { remaining: number; resetAt: number; used?: number } | undefined;

  async function takeDb(db: CrawlDb): Promise<number> {
    // The wait (if any) is decided under the row lock; the sleep happens outside the transaction.
    return db.transaction().execute(async (trx) => {
      // A row to lock even for the very first request, so concurrent first requests queue on it.
      await trx
        .insertInto('wombat.reddit_rate_limits')
        .values({ client_key: o.clientKey, remaining: 0, used: null, reset_at: new Date(0), updated_at: sql<Date>`clock_timestamp()` })
        .onConflict((oc) => oc.column('client_key').doNothing())
        .execute();
      const row = await trx.selectFrom('wombat.reddit_rate_limits').select(['remaining', 'reset_at']).where('client_key', '=', o.clientKey).forUpdate().executeTakeFirstOrThrow();
      // Read once the row is ours: the wait is measured from the moment the decision is made.
      const { now_ms } = await sql<{ now_ms: number }>`select (extract(epoch from clock_timestamp()) * 1000)::float8 as now_ms`.execute(trx).then((r) => r.rows[0]!);
      const resetAt = row.reset_at.getTime();
      if (resetAt <= now_ms) {
        await trx
          .updateTable('wombat.reddit_rate_limits')
          .set({ remaining: PROBING, reset_at: sql<Date>`clock_timestamp() + make_interval(secs => ${probeHoldMs / 1000})`, updated_at: sql<Date>`clock_timestamp()` })
          .where('client_key', '=', o.clientKey)
          .execute();
        return 0;
      }
      if (row.remaining < 1) return resetAt - now_ms;
      await trx
        .updateTable('wombat.reddit_rate_limits')
        .set({ remaining: sql<number>`remaining - 1`, updated_at: sql<Date>`clock_timestamp()` })
        .where('client_key', '=', o.clientKey)
        .execute();
      return 0;
    });
  }

  function takeLocal(): number {
    const t = now();
    if (!local || local.resetAt <= t) {
      local = { remaining: PROBING, resetAt: t + probeHoldMs };
      return 0;
    }
    if (local.remaining < 1) return local.resetAt - t;
    local.remaining -= 1;
    return 0;
  }

  async function store(remaining: number, resetSeconds: number, used: number | undefined): Promise<void> {
    if (!o.db) {
      const resetAt = now() + resetSeconds * 1000;
      const same = local && local.remaining !== PROBING && Math.abs(local.resetAt - resetAt) < SAME_WINDOW_MS;
      local = { remaining: same ? Math.min(local!.remaining, remaining) : remaining, resetAt, ...(used !== undefined ? { used } : {}) };
      return;
    }
    // Answers arrive out of order: within one window the lowest remaining is the truth;
    // the first answer after a booking replaces it.
    await o.db
      .insertInto('wombat.reddit_rate_limits')
      .values({ client_key: o.clientKey, remaining, used: used ?? null, reset_at: sql<Date>`clock_timestamp() + make_interval(secs => ${resetSeconds})`, updated_at: sql<Date>`clock_timestamp()` })
      .onConflict((oc) =>
        oc.column('client_key').doUpdateSet({
          remaining: sql<number>`case when wombat.reddit_rate_limits.remaining = ${PROBING} then excluded.remaining
                                  when abs(extract(epoch from (wombat.reddit_rate_limits.reset_at - excluded.reset_at))) * 1000 < ${SAME_WINDOW_MS}
                                  then least(wombat.reddit_rate_limits.remaining, excluded.remaining) else excluded.remaining end`,
          used: sql<number | null>`coalesce(excluded.used, wombat.reddit_rate_limits.used)`,
          reset_at: sql<Date>`excluded.reset_at`,
          updated_at: sql<Date>`excluded.updated_at`,
        }),
      )
      .execute();
  }

  /** An answer without budget headers: the booked window learnt nothing, so the next request may book it again. */
  async function release(): Promise<void> {
    if (!o.db) {
      if (local?.remaining === PROBING) local = undefined;
      return;
    }
    await o.db
      .updateTable('wombat.reddit_rate_limits')
      .set({ reset_at: sql<Date>`clock_timestamp()`, updated_at: sql<Date>`clock_timestamp()` })
      .where('client_key', '=', o.clientKey)
      .where('remaining', '=', PROBING)
      .execute();
  }

  return {
    async take(signal) {
      for (;;) {
        signal?.throwIfAborted();
        const waitMs = o.db ? await takeDb(o.db) : takeLocal();
        if (waitMs <= 0) return;
        if (waitMs > maxWaitMs) throw new Error(`Reddit's request budget resets in ${Math.round(waitMs / 1000)} s, longer than this run may wait`);
        // A little past the reset: Reddit's clock and the database's differ by up to a second.
        await sleep(waitMs + 250, signal);
      }
    },
    async observe(h) {
      if (h.remaining === undefined || h.resetSeconds === undefined) return release();
      await store(h.remaining, h.resetSeconds, h.used);
    },
    async exhausted(resetSeconds) {
      await store(0, resetSeconds, undefined);
    },
  };
}
