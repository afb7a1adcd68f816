import { sql, type Kysely } from 'kysely';
import { fromKysely, type PgBoss } from 'pg-boss';
import { CANCEL_CHANNEL, type JobType } from '../jobs/contracts.ts';
import { resolveJobName, unknownJobMessage } from '../jobs/job-names.ts';
import { ValidationError, type FieldIssue } from '../platform/errors.ts';
import { cancelChildRuns } from './backfill.ts';
import { ACTIVE_RUN_STATES, type ActiveRunState } from './states.ts';
import type { RunTables } from './tables.ts';

/**
 * cancel, many at once: empties a queue in one step (`wombat cancel --job`, `POST
 * /api/runs/cancel`, the dashboard). The same transition as cancelRun, for every unfinished
 * run of one job type in the states asked for (queued by default), optionally only those
 * created longer ago than an age.
 */
export interface CancelRunsInput {
  job: JobType;
  states: ActiveRunState[];
  /** Only runs created at least this many seconds ago. */
  olderThanSeconds?: number;
}

const AGE_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** "90s", "30m", "1h", "2d", "1w" -> seconds; null when it is not such an age. */
export function parseAge(v: string): number | null {
  const m = /^(\d{1,7})(s|m|h|d|w)$/.exec(v.trim());
  return m ? Number(m[1]) * AGE_UNITS[m[2]!]! : null;
}

/**
 * The operator's words (job name or old alias, state names, an age) as a CancelRunsInput;
 * ValidationError naming each bad field. The CLI and the api both take input through this.
 */
export function cancelRunsInput(raw: { job: string | undefined; states?: string[] | undefined; olderThan?: string | undefined }): CancelRunsInput {
  const issues: FieldIssue[] = [];
  const job = raw.job === undefined ? undefined : resolveJobName(raw.job);
  if (raw.job === undefined) issues.push({ field: 'job', message: 'job is required: the job type whose runs to cancel' });
  else if (!job) issues.push({ field: 'job', message: unknownJobMessage(raw.job) });
  const states = raw.states === undefined || raw.states.length === 0 ? ['queued'] : raw.states;
  const bad = states.filter((s) => !(ACTIVE_RUN_STATES as readonly string[]).includes(s));
  if (bad.length > 0) {
    issues.push({ field: 'state', message: `state ${bad.map((s) => `"${s}"`).join(', ')} cannot be cancelled; give one of ${ACTIVE_RUN_STATES.join(', ')} (default queued)` });
  }
  let olderThanSeconds: number | undefined;
  if (raw.olderThan !== undefined) {
    const age = parseAge(raw.olderThan);
    if (age === null) issues.push({ field: 'older_than', message: `older_than must be an age like 90s, 30m, 1h, 2d or 1w, not "${raw.olderThan}"` });
    else olderThanSeconds = age;
  }
  if (issues.length > 0) throw new ValidationError(issues);
  return { job: job!, states: [...new Set(states)] as ActiveRunState[], ...(olderThanSeconds !== undefined ? { olderThanSeconds } : {}) };
}

/** pg-boss job ids per cancel statement. */
const CANCEL_CHUNK = 5000;

/**
 * In one transaction: locks the matching runs, cancels their pg-boss jobs (a held run has
 * none), marks the runs cancelled and NOTIFYs the workers holding any of them, so the run
 * history and pg-boss agree at every instant. Returns how many runs were cancelled.
 */
export async function cancelRuns(db: Kysely<RunTables>, boss: PgBoss, input: CancelRunsInput): Promise<{ cancelled: number }> {
  return db.transaction().execute(async (trx) => {
    let q = trx.selectFrom('wombat.runs').select(['id', 'state', 'trigger', 'parent_id']).where('job', '=', input.job).where('state', 'in', input.states);
    if (input.olderThanSeconds !== undefined) q = q.where('created_at', '<', sql<Date>`now() - make_interval(secs => ${input.olderThanSeconds})`);
    const runs = await q.orderBy('id').forUpdate().execute();
    if (runs.length === 0) return { cancelled: 0 };
    const ids = runs.map((r) => r.id);
    // A backfill's parent has no job; its unfinished children are cancelled with it.
    const parents = runs.filter((r) => r.trigger === 'backfill' && r.parent_id === null).map((r) => r.id);
    for (const id of parents) await cancelChildRuns(trx, boss, id);
    const withJobs = runs.filter((r) => r.state !== 'held' && r.state !== 'waiting' && !parents.includes(r.id)).map((r) => r.id);
    for (let i = 0; i < withJobs.length; i += CANCEL_CHUNK) await boss.cancel(input.job, withJobs.slice(i, i + CANCEL_CHUNK), { db: fromKysely(trx) });
    await trx
      .updateTable('wombat.runs')
      .set({ state: 'cancelled', finished_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
      .where('id', '=', sql<string>`any(${ids}::uuid[])`)
      .execute();
    // A queued run may have been fetched a moment ago: its worker hears the cancel too.
    await sql`select pg_notify(${CANCEL_CHANNEL}, id) from unnest(${ids}::text[]) id`.execute(trx);
    return { cancelled: ids.length };
  });
}
