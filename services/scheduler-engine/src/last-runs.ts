import type { Kysely } from 'kysely';
import type { Logger } from '@wombat/core/platform';
import { recordLastRuns, type LastRunRow } from '@wombat/core/schedules';
import type { CoreTables } from '@wombat/core/tables';
import type { PublishedOccurrence } from './publish.ts';

export interface LastRunWriter {
  /**
   * Notes the occurrences a committed batch recorded; the latest per schedule wins.
   * `versions`: the schedule version each was planned with (next_run_at follows it).
   */
  add(published: PublishedOccurrence[], versions: Map<number, number>): void;
  /** Writes what is pending; one write at a time, a failed one is kept and retried by the next call. */
  flush(): Promise<void>;
}

/**
 * Each schedule's last_run_at / last_run_id / next_run_at, written after the
 * publishing transactions commit rather than inside them: it is status for
 * people and for restarts, and a thousand row updates in the publishing
 * transaction delayed every job of a burst by about 20 ms. Exactly-once does not
 * depend on it: an engine restarting from an older last_run_at recomputes
 * occurrences the unique index has already recorded, and inserts nothing.
 */
export function createLastRunWriter(db: Kysely<CoreTables>, log: Logger): LastRunWriter {
  const pending = new Map<number, LastRunRow>();
  let writing: Promise<void> | undefined;
  let again = false;

  async function write(): Promise<void> {
    do {
      again = false;
      if (pending.size === 0) return;
      const rows = [...pending.values()];
      pending.clear();
      try {
        await recordLastRuns(db, rows);
      } catch (err) {
        // Keep them unless a newer occurrence arrived meanwhile; the next flush retries.
        for (const r of rows) if (!pending.has(r.id)) pending.set(r.id, r);
        log.warn({ err, schedules: rows.length }, 'could not record last occurrences; will retry');
        return;
      }
    } while (again);
  }

  return {
    add(published, versions) {
      for (const p of published) {
        const prev = pending.get(p.scheduleId);
        if (prev && Date.parse(prev.last_run_at) >= p.scheduledFor.getTime()) continue;
        pending.set(p.scheduleId, {
          id: p.scheduleId,
          last_run_at: p.scheduledFor.toISOString(),
          last_run_id: p.runId,
          next_at: p.nextAt ? p.nextAt.toISOString() : null,
          version: versions.get(p.scheduleId) ?? 0,
        });
      }
    },
    flush() {
      if (writing) {
        again = true;
        return writing;
      }
      writing = write().finally(() => (writing = undefined));
      return writing;
    },
  };
}
