import type { Kysely } from 'kysely';
import { type Logger, type Sql, withDeadline } from '@wombat/core/platform';
import { listSchedulesAfter, rowToSchedule, setNextRunAt, type SchedulerTables, SCHEDULES_CHANNEL } from '@wombat/core/schedules';
import { type CoreTables } from '@wombat/core/tables';
import type { ScheduleSet } from './schedule-set.ts';

/** Schedules per page of a full re-read, and per next_run_at update. */
const RECONCILE_PAGE_ROWS = 500;
/** Notifications arriving within this long are folded into one read: a burst of edits costs one statement. */
const NOTIFY_DEBOUNCE_MS = 10;

export interface ScheduleMirrorDeps {
  db: Kysely<CoreTables>;
  /** The client that LISTENs (a session connection of its own behind a transaction pooler). */
  listenSql: Sql;
  log: Logger;
  schedules: ScheduleSet;
  /** Whether this engine publishes (and so writes next_run_at). */
  enabled: boolean;
  /** Started and not stopping: notifications and reconnects are followed only then. */
  following(): boolean;
  /** The set changed: the caller sets its timer again. */
  onChange(): void;
}

export interface ScheduleMirror {
  /** Re-reads every schedule (in pages of one snapshot) and forgets the ones gone. */
  reconcile(): Promise<void>;
  /** Re-reads these schedules (a notification, or a transaction that found them changed). */
  reread(ids: number[]): Promise<void>;
  /** LISTENs for schedule changes; after a reconnect (notifications may have been lost) re-reads everything. */
  listen(): Promise<void>;
  /** Stops following notifications; waits for the UNLISTEN at most `deadlineMs`. */
  stop(deadlineMs: number): Promise<void>;
}

/** The engine's copy of wombat.schedules, kept current by re-reads and LISTEN/NOTIFY. */
export function createScheduleMirror(deps: ScheduleMirrorDeps): ScheduleMirror {
  const { db, log, schedules } = deps;
  const pendingIds = new Set<number>();
  let pendingTimer: NodeJS.Timeout | undefined;
  let unlisten: (() => Promise<void>) | undefined;

  const nextAt = (id: number) => schedules.slots.get(id)?.next?.toISOString() ?? null;

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
            schedules.apply(s);
            const next = nextAt(s.id);
            if ((s.nextRunAt?.toISOString() ?? null) !== next) nextRows.push({ id: s.id, next_at: next });
          }
          if (page.length < RECONCILE_PAGE_ROWS) break;
          afterId = page.at(-1)!.id;
        }
      });
    for (const known of schedules.knownIds()) if (!seen.has(known)) schedules.forget(known);
    if (deps.enabled) for (let i = 0; i < nextRows.length; i += RECONCILE_PAGE_ROWS) await setNextRunAt(db, nextRows.slice(i, i + RECONCILE_PAGE_ROWS));
    deps.onChange();
  }

  async function reread(ids: number[]): Promise<void> {
    const rows = await db.withTables<SchedulerTables>().selectFrom('wombat.schedules').selectAll().where('id', 'in', ids).execute();
    const found = new Set(rows.map((r) => r.id));
    for (const r of rows) schedules.apply(rowToSchedule(r));
    for (const missing of ids.filter((x) => !found.has(x))) schedules.forget(missing);
    if (deps.enabled) await setNextRunAt(db, rows.map((r) => ({ id: r.id, next_at: nextAt(r.id) })));
    deps.onChange();
  }

  function onNotify(payload: string): void {
    const scheduleId = Number(payload);
    if (!Number.isSafeInteger(scheduleId)) return;
    pendingIds.add(scheduleId);
    pendingTimer ??= setTimeout(() => {
      pendingTimer = undefined;
      const ids = [...pendingIds];
      pendingIds.clear();
      if (deps.following()) reread(ids).catch((err) => log.error({ err }, 'could not follow schedule changes; the periodic reconcile will'));
    }, NOTIFY_DEBOUNCE_MS);
  }

  return {
    reconcile,
    reread,
    async listen() {
      let first = true;
      const listener = await deps.listenSql.listen(SCHEDULES_CHANNEL, onNotify, () => {
        // Called again after a reconnect: notifications may have been lost meanwhile.
        if (!first && deps.following()) reconcile().catch((err) => log.error({ err }, 'reconcile after reconnect failed'));
        first = false;
      });
      unlisten = () => listener.unlisten();
    },
    async stop(deadlineMs) {
      clearTimeout(pendingTimer);
      pendingTimer = undefined;
      pendingIds.clear();
      const listening = unlisten;
      unlisten = undefined;
      // With Postgres unreachable this would wait for a connection; the process is leaving anyway.
      if (listening) await withDeadline(listening(), deadlineMs, 'unlisten').catch((err: unknown) => log.warn({ err }, 'could not stop listening for schedule changes'));
    },
  };
}
