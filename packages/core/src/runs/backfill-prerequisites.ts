import type { Kysely } from 'kysely';
import { takesPeriod } from '../jobs/contracts.ts';
import { AppError } from '../platform/errors.ts';
import { dependencyOrder } from '../schedules/dependency-graph.ts';
import { rowToSchedule } from '../schedules/store.ts';
import type { SchedulerTables } from '../schedules/tables.ts';
import type { Schedule } from '../schedules/types.ts';
import { planBackfill, type BackfillOccurrence, type BackfillOptions } from './backfill-plan.ts';
import type { RunTables } from './tables.ts';

/**
 * Dependencies apply inside a backfill, always (no flag): a backfill of a schedule with
 * prerequisites (after) covers them too, transitively, over the same range. Each
 * prerequisite's occurrences are planned like the schedule's own (skipped when completed
 * already, unless rerun) and become children of the same parent; releaseBackfills
 * releases a child only once its prerequisites' runs for its period have completed.
 */

interface BackfillScope {
  /** The prerequisites in dependency order, then the schedule itself. */
  schedules: Schedule[];
  /** Every schedule's occurrences, by time and, at the same instant, prerequisites first. */
  plan: BackfillOccurrence[];
  notes: string[];
}

/** The schedule's prerequisites, transitively, as stored now; names no longer stored are left out. */
async function prerequisitesOf(db: Kysely<SchedulerTables>, s: Schedule): Promise<{ found: Schedule[]; missing: string[] }> {
  const byName = new Map<string, Schedule>([[s.name, s]]);
  const missing = new Set<string>();
  let wanted = [...s.after];
  // Bounded by the number of schedules: each round only asks for names not seen yet.
  while (wanted.length > 0) {
    const rows = await db.selectFrom('wombat.schedules').selectAll().where('name', 'in', wanted).execute();
    for (const r of rows) byName.set(r.name, rowToSchedule(r));
    for (const n of wanted) if (!byName.has(n)) missing.add(n);
    wanted = [...new Set(rows.flatMap((r) => rowToSchedule(r).after))].filter((n) => !byName.has(n) && !missing.has(n));
  }
  const nodes = [...byName.values()].map((x) => ({ name: x.name, after: x.after.filter((a) => byName.has(a)) }));
  const order = dependencyOrder(nodes);
  return { found: order.filter((n) => n !== s.name).map((n) => byName.get(n)!), missing: [...missing] };
}

/**
 * The plan of a backfill of `s` with its prerequisites; AppError backfill_too_large when all
 * the schedules together hold more than `max` occurrences. A prerequisite whose job takes no
 * logical period is not planned (said in the notes): its children's release then goes by the
 * runs it has.
 */
export async function planBackfillScope(db: Kysely<RunTables & SchedulerTables>, s: Schedule, o: BackfillOptions): Promise<BackfillScope> {
  const { found, missing } = await prerequisitesOf(db, s);
  const notes: string[] = [];
  const planned: Schedule[] = [];
  for (const p of found) {
    if (takesPeriod(p.job)) planned.push(p);
    else notes.push(`${p.name} (a prerequisite) runs ${p.job}, which takes no logical period: it is not backfilled; its runs as recorded decide`);
  }
  planned.push(s);
  const plans = new Map<number, BackfillOccurrence[]>();
  let total = 0;
  for (const x of planned) {
    const plan = await planBackfill(db, x, o);
    total += plan.length;
    plans.set(x.id, plan);
  }
  if (total > o.max) throw new AppError('backfill_too_large', `the range holds ${total} occurrences of ${planned.map((x) => x.name).join(', ')}: narrow the range or raise max (--max)`);
  const rank = new Map(planned.map((x, i) => [x.id, i]));
  const plan = planned
    .flatMap((x) => plans.get(x.id)!)
    .sort((a, b) => a.scheduled_for.localeCompare(b.scheduled_for) || rank.get(a.schedule_id)! - rank.get(b.schedule_id)!);
  if (planned.length > 1) {
    const counts = planned.slice(0, -1).map((x) => {
      const p = plans.get(x.id)!;
      const run = p.filter((q) => q.action === 'run').length;
      return `${x.name} (${run} to run, ${p.length - run} skipped)`;
    });
    notes.push(
      `${s.name} waits for ${s.after.join(', ')} (after): the backfill covers its prerequisites over the same range, ${counts.join(', ')}, and releases each child only once its prerequisites' runs for its period have completed`,
    );
  }
  if (missing.length > 0) notes.push(`prerequisite(s) ${missing.join(', ')} no longer exist: children waiting for them are skipped (dependency_failed)`);
  return { schedules: planned, plan, notes };
}
