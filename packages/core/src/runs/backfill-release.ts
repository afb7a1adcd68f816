import { sql, type Transaction } from 'kysely';
import { fromKysely, type PgBoss } from 'pg-boss';
import { isJobType } from '../jobs/contracts.ts';
import { dependencyPeriod, type DependencyPeriod } from '../schedules/dependency-period.ts';
import { rowToSchedule } from '../schedules/store.ts';
import type { SchedulerTables } from '../schedules/tables.ts';
import { wallTimeAt } from '../schedules/time-zone.ts';
import type { Schedule } from '../schedules/types.ts';
import { jobInsertFor, scheduleJobOptions } from './record.ts';
import { prerequisiteVerdict } from './release-waiting.ts';
import type { RunTables } from './tables.ts';

/**
 * release, for one backfill parent's held children (the parent locked by the caller): in
 * occurrence order, each child whose prerequisites' runs for its period (dependencyPeriod)
 * have completed is queued with its own schedule's job settings, into the free slots only.
 * A prerequisite's run counts whoever made it: this backfill's child of it, another
 * backfill's, or the schedule's own run.
 *
 * A child whose prerequisite's run is not finished stays held, saying what it waits for,
 * and takes no slot; one whose prerequisite's run failed for good (or that no longer
 * exists) ends skipped, dependency_failed. There is no time window (the occurrence is
 * past): a prerequisite with no run at all in the period and none planned (its completed
 * run deleted by retention, its job not backfillable, the period outside the range) counts
 * as complete, since nothing would ever end the wait.
 */

/** Held children looked at per pass: enough to reach past those waiting at the front. */
const CANDIDATES = 500;

type Tables = RunTables & SchedulerTables;

interface Gate {
  state: 'ready' | 'waits' | 'skip';
  reason?: string;
}

export async function releaseBackfillChildren(trx: Transaction<Tables>, boss: PgBoss, parentId: string, slots: number): Promise<string[]> {
  const held = await trx
    .selectFrom('wombat.runs')
    .select(['id', 'job', 'params', 'schedule_id', 'scheduled_for', 'reason'])
    .where('parent_id', '=', parentId)
    .where('state', '=', 'held')
    .orderBy('scheduled_for')
    .orderBy('id')
    .limit(CANDIDATES)
    .forUpdate()
    .execute();
  if (held.length === 0) return [];
  const ids = [...new Set(held.flatMap((c) => (c.schedule_id == null ? [] : [Number(c.schedule_id)])))];
  const own = ids.length > 0 ? await trx.selectFrom('wombat.schedules').selectAll().where('id', 'in', ids).execute() : [];
  const schedules = new Map(own.map((r) => [Number(r.id), rowToSchedule(r)]));
  const names = [...new Set([...schedules.values()].flatMap((s) => s.after))];
  const prerequisites = new Map(
    (names.length > 0 ? await trx.selectFrom('wombat.schedules').selectAll().where('name', 'in', names).execute() : []).map((r) => [r.name, rowToSchedule(r)]),
  );
  const conn = { db: fromKysely(trx) };
  const released: string[] = [];
  for (const c of held) {
    if (released.length >= slots) break;
    const s = c.schedule_id == null ? undefined : schedules.get(Number(c.schedule_id));
    const gate = s && c.scheduled_for ? await gateOf(trx, s, prerequisites, new Date(c.scheduled_for)) : { state: 'ready' as const };
    if (gate.state === 'skip') {
      await trx
        .updateTable('wombat.runs')
        .set({ state: 'skipped', reason: gate.reason ?? null, finished_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
        .where('id', '=', c.id)
        .execute();
      continue;
    }
    if (gate.state === 'waits') {
      if (c.reason !== gate.reason) await trx.updateTable('wombat.runs').set({ reason: gate.reason ?? null, updated_at: sql<Date>`now()` }).where('id', '=', c.id).execute();
      continue;
    }
    if (!isJobType(c.job)) continue;
    // Its own schedule's job settings as they are now; a deleted schedule's children take the job's defaults.
    const options = s ? scheduleJobOptions(s) : {};
    await boss.insert(c.job, [jobInsertFor({ job: c.job, params: c.params as object, ...options }, c.id)], conn);
    await trx
      .updateTable('wombat.runs')
      .set({ state: 'queued', reason: null, published_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
      .where('id', '=', c.id)
      .execute();
    released.push(c.id);
  }
  return released;
}

/** Where a child stands with its schedule's prerequisites (as stored now) for its occurrence. */
async function gateOf(trx: Transaction<Tables>, s: Schedule, prerequisites: Map<string, Schedule>, at: Date): Promise<Gate> {
  const waits: string[] = [];
  for (const name of s.after) {
    const p = prerequisites.get(name);
    if (!p) return { state: 'skip', reason: `dependency_failed: ${s.name} waits for ${name}, which no longer exists` };
    const period = dependencyPeriod(s, p, at);
    if (!period) continue;
    const v = await prerequisiteVerdict(trx, p.id, period.from, period.to);
    if (v.state === 'failed') return { state: 'skip', reason: `dependency_failed: ${s.name} waits for ${name}, which ended ${v.ended} for ${periodText(period, s.timezone)} (run ${v.runId})` };
    if (v.state === 'pending' && !v.none) waits.push(`${name} of ${periodText(period, s.timezone)}`);
  }
  return waits.length > 0 ? { state: 'waits', reason: `waits for ${waits.join(', ')} (after)` } : { state: 'ready' };
}

/** 2026-11-03 for a day's period (in the waiter's time zone), from..to instants otherwise. */
function periodText(p: DependencyPeriod, timezone: string): string {
  if (p.kind === 'occurrence') return `${p.from.toISOString()}..${p.to.toISOString()}`;
  const w = wallTimeAt(p.from.getTime(), timezone);
  return `${w.year}-${String(w.month).padStart(2, '0')}-${String(w.day).padStart(2, '0')}`;
}
