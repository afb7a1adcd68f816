import { sql } from 'kysely';
import { sleep } from '../rate-limit.ts';
import type { CrawlDb } from './store.ts';

/**
 * Reddit's request budget, shared by every process through PostgreSQL. Reddit
 * states it on each answer (X-Ratelimit-Remaining, -Used, -Reset seconds until
 * the window ends); a process books one request before sending it and stores
 * what the answer says, so processes together never spend more than Reddit
 * allows. Without a database the same rules hold inside the process only.
 */
export interface RedditBudget {
  /** Resolves when a request may be sent (waiting for the window to reset when none is left). */
  take(signal?: AbortSignal): Promise<void>;
  /** Records what an answer's headers say. */
  observe(h: { remaining?: number; used?: number; resetSeconds?: number }): Promise<void>;
  /** A 429: nothing is sent before `resetSeconds` from now. */
  exhausted(resetSeconds: number): Promise<void>;
}

/** Windows whose reset times differ by less than this are the same window (the header has whole seconds). */
const SAME_WINDOW_MS = 2_000;

export function redditBudget(o: { db?: CrawlDb; clientKey: string; now?: () => number; maxWaitMs?: number }): RedditBudget {
  const now = o.now ?? Date.now;
  const maxWaitMs = o.maxWaitMs ?? 15 * 60_000;
  let local: { remaining: number; resetAt: number; used?: number } | undefined;

  async function takeDb(db: CrawlDb): Promise<number> {
    // The wait (if any) is decided under the row lock; the sleep happens outside the transaction.
    return db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('wombat.reddit_rate_limits')
        .select(['remaining', 'reset_at'])
        .where('client_key', '=', o.clientKey)
        .forUpdate()
        .executeTakeFirst();
      const t = now();
      if (!row || row.reset_at.getTime() <= t) return 0;
      if (row.remaining < 1) return row.reset_at.getTime() - t;
      await trx
        .updateTable('wombat.reddit_rate_limits')
        .set({ remaining: sql<number>`remaining - 1`, updated_at: new Date(t) })
        .where('client_key', '=', o.clientKey)
        .execute();
      return 0;
    });
  }

  function takeLocal(): number {
    const t = now();
    if (!local || local.resetAt <= t) return 0;
    if (local.remaining < 1) return local.resetAt - t;
    local.remaining -= 1;
    return 0;
  }

  async function store(remaining: number, resetAt: number, used: number | undefined): Promise<void> {
    if (!o.db) {
      const same = local && Math.abs(local.resetAt - resetAt) < SAME_WINDOW_MS;
      local = { remaining: same ? Math.min(local!.remaining, remaining) : remaining, resetAt, ...(used !== undefined ? { used } : {}) };
      return;
    }
    const resetDate = new Date(resetAt);
    // Answers arrive out of order: within one window the lowest remaining is the truth.
    await o.db
      .insertInto('wombat.reddit_rate_limits')
      .values({ client_key: o.clientKey, remaining, used: used ?? null, reset_at: resetDate, updated_at: new Date(now()) })
      .onConflict((oc) =>
        oc.column('client_key').doUpdateSet({
          remaining: sql<number>`case when abs(extract(epoch from (wombat.reddit_rate_limits.reset_at - excluded.reset_at))) * 1000 < ${SAME_WINDOW_MS}
                                  then least(wombat.reddit_rate_limits.remaining, excluded.remaining) else excluded.remaining end`,
          used: sql<number | null>`coalesce(excluded.used, wombat.reddit_rate_limits.used)`,
          reset_at: sql<Date>`excluded.reset_at`,
          updated_at: sql<Date>`excluded.updated_at`,
        }),
      )
      .execute();
  }

  return {
    async take(signal) {
      for (;;) {
        signal?.throwIfAborted();
        const waitMs = o.db ? await takeDb(o.db) : takeLocal();
        if (waitMs <= 0) return;
        if (waitMs > maxWaitMs) throw new Error(`Reddit's request budget resets in ${Math.round(waitMs / 1000)} s, longer than this run may wait`);
        // A little past the reset: Reddit's clock and ours differ by up to a second.
        await sleep(waitMs + 250, signal);
      }
    },
    async observe(h) {
      if (h.remaining === undefined || h.resetSeconds === undefined) return;
      await store(h.remaining, now() + h.resetSeconds * 1000, h.used);
    },
    async exhausted(resetSeconds) {
      await store(0, now() + resetSeconds * 1000, undefined);
    },
  };
}
