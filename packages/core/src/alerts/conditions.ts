import { sql, type Kysely, type Transaction } from 'kysely';
import { BOSS_SCHEMA } from '../platform/boss.ts';
import { readRunCounts } from '../runs/run-counts.ts';
import type { RunTables } from '../runs/tables.ts';
import { nextOccurrences } from '../schedules/occurrences.ts';
import type { ScheduleTrigger } from '../schedules/types.ts';
import type { AlertConfig } from './config.ts';
import { readDatabaseHealth, type WatchedPath } from './database-health.ts';
import { dependencySkips } from './dependency-conditions.ts';
import { expectedIntervalMs, levelAbove, levelAtOrBelow, type OpenAlert } from './plan.ts';
import type { AlertKind, Condition } from './types.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any> | Transaction<any>;

export type ConditionOptions = Pick<
  AlertConfig,
  | 'alertLookbackHours'
  | 'alertOverlapSkips'
  | 'alertStaleFactor'
  | 'alertWorkersWarning'
  | 'alertWorkersCritical'
  | 'alertQueueLengthWarning'
  | 'alertQueueLengthCritical'
  | 'alertFailureRateWarningPct'
  | 'alertFailureRateCriticalPct'
  | 'alertFailureRateMinRuns'
  | 'alertRunTimeWarningSeconds'
  | 'alertRunTimeCriticalSeconds'
  | 'alertDeadLettersWarning'
  | 'alertDeadLettersCritical'
  | 'alertWindowMinutes'
  | 'alertLinkBaseUrl'
  | 'alertDbConnectionsWarningPct'
  | 'alertDbConnectionsCriticalPct'
  | 'alertTransactionAgeWarningSeconds'
  | 'alertTransactionAgeCriticalSeconds'
  | 'alertDeadRowsWarningPct'
  | 'alertDeadRowsCriticalPct'
  | 'alertDeadRowsMinRows'
  | 'alertDiskWarningPct'
  | 'alertDiskCriticalPct'
> & {
  /** Directories whose file systems are watched (DATA_ROOT, BACKUP_DIR); the database's own is added when on this host. */
  watchedPaths?: WatchedPath[];
};

const iso = (d: Date | string | null | undefined): string => (d ? new Date(d).toISOString().replace(/\.\d+Z$/, 'Z') : 'never');

/** Where to look further: a link when the api's public URL is known, the api path otherwise. */
export function lookAt(base: string | undefined, path: string): string {
  return base ? `${base.replace(/\/+$/, '')}${path}` : `GET ${path} on the api`;
}

interface Gatherer {
  kinds: AlertKind[];
  run(db: Db, o: ConditionOptions, ctx: { open: OpenAlert[]; nowMs: number }): Promise<Condition[]>;
}

/** Run ids listed in a grouped alert; the count says how many there are. */
const GROUP_IDS_SHOWN = 5;

/** Dead letters a group's count reads at most: past it the alert says "more than". */
export const DEAD_LETTER_GROUP_CAP = 1000;

/** The failed-runs alert's group of a dead letter, as index runs_dead_letter_groups keys it (0 and '' for none). */
const groupColumns = sql`coalesce(r.schedule_id, 0), (case when r.schedule_id is null then r.job else '' end), coalesce(r.error->>'code', 'unknown')`;
const groupKey = sql`(${groupColumns})`;
const deadLetter = sql`r.state = 'failed' and r.requeued_as is null`;

interface DeadLetterGroup {
  schedule_id: number | null;
  job: string;
  code: string;
  n: number;
  critical: boolean;
  ids: string[];
  first_at: Date;
  last_at: Date;
  trigger: string;
  attempts: number;
  error: { code?: string; message?: string } | null;
  schedule_name: string | null;
  recent: boolean;
}

/** One row per group of dead letters (failedRuns), read as its doc says: a probe per group, a capped count. */
export function deadLetterGroups(lookbackHours: number) {
  return sql<DeadLetterGroup>`
    with recursive groups (s, j, c) as (
      (select ${groupColumns} from wombat.runs r where ${deadLetter} order by 1, 2, 3 limit 1)
      union all
      select n.* from groups g cross join lateral (
        select ${groupColumns} from wombat.runs r where ${deadLetter} and ${groupKey} > (g.s, g.j, g.c) order by 1, 2, 3 limit 1) n)
    select nullif(g.s, 0) as schedule_id, g.c as code, s.name as schedule_name, counted.n, counted.critical,
           newest.ids, newest.job, newest.trigger, newest.attempts, newest.error, newest.last_at, oldest.first_at,
           newest.last_at > now() - make_interval(hours => ${lookbackHours}) as recent
    from groups g
    cross join lateral (
      select count(*)::int as n, bool_or(x.trigger in ('schedule', 'fanout')) as critical
      from (select r.trigger from wombat.runs r where ${deadLetter} and ${groupKey} = (g.s, g.j, g.c)
            order by r.finished_at desc limit ${DEAD_LETTER_GROUP_CAP + 1}) x) counted
    cross join lateral (
      select array_agg(x.id::text order by x.finished_at desc, x.id) as ids, (array_agg(x.job order by x.finished_at desc, x.id))[1] as job,
             (array_agg(x.trigger order by x.finished_at desc, x.id))[1] as trigger, (array_agg(x.attempts order by x.finished_at desc, x.id))[1] as attempts,
             (array_agg(x.error order by x.finished_at desc, x.id))[1] as error, max(x.finished_at) as last_at
      from (select r.id, r.job, r.trigger, r.attempts, r.error, r.finished_at from wombat.runs r where ${deadLetter} and ${groupKey} = (g.s, g.j, g.c)
            order by r.finished_at desc, r.id limit ${GROUP_IDS_SHOWN}) x) newest
    cross join lateral (
      select r.finished_at as first_at from wombat.runs r where ${deadLetter} and ${groupKey} = (g.s, g.j, g.c)
      order by r.finished_at asc, r.id desc limit 1) oldest
    left join wombat.schedules s on s.id = nullif(g.s, 0)`;
}

/**
 * Runs failed for good (dead letters) or lost with their worker, grouped per
 * schedule (or job, for runs of no schedule) and error code: a fan-out whose
 * thousands of children fail while an exchange is down is one alert with the
 * count and a few run ids. Every group with a dead letter is evaluated, not the
 * newest few hundred runs, so it resolves only when none of its runs is still
 * a dead letter (requeued or purged); it opens only for a run that failed within
 * the look-back window.
 *
 * The round steps from group to group through index runs_dead_letter_groups (one
 * probe each), then reads each group's newest five, its oldest, and at most
 * DEAD_LETTER_GROUP_CAP + 1 entries to count: its cost follows the groups, not the
 * dead letters. Past the cap the count reads "more than" the cap, and the group is
 * critical when a scheduled or fan-out run is among its newest entries.
 */
const failedRuns: Gatherer = {
  kinds: ['run_failed', 'run_lost'],
  async run(db, o, { open }) {
    const { rows } = await deadLetterGroups(o.alertLookbackHours).execute(db);
    const openKeys = new Set(open.map((a) => a.key));
    const out: Condition[] = [];
    for (const r of rows) {
      const lost = r.code === 'worker_lost';
      const kind = lost ? 'run_lost' : 'run_failed';
      const code = r.code.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
      const key = `${kind}:${r.schedule_id !== null ? `schedule:${r.schedule_id}` : `job:${r.job}`}:${code}`;
      // A group that is already open stays evaluated whatever the age of its runs.
      if (!r.recent && !openKeys.has(key)) continue;
      const what = r.schedule_name ? `schedule ${r.schedule_name}` : r.schedule_id !== null ? `schedule ${r.schedule_id} (deleted)` : `${r.trigger} runs of no schedule`;
      const why = r.error?.message ? `: ${r.error.message.slice(0, 500)}` : '';
      // Past the cap the group has more dead letters than were counted.
      const capped = r.n > DEAD_LETTER_GROUP_CAP;
      const n = capped ? `more than ${DEAD_LETTER_GROUP_CAP}` : String(r.n);
      const more = capped ? ' and more' : r.n > r.ids.length ? ` and ${r.n - r.ids.length} more` : '';
      const look = r.schedule_id !== null ? `/api/runs?schedule=${r.schedule_id}&state=failed` : `/api/runs?job=${r.job}&state=failed`;
      out.push({
        key,
        kind,
        severity: r.critical ? 'critical' : 'warning',
        subject:
          r.n === 1
            ? lost
              ? `${r.job} run lost with its worker (${what})`
              : `${r.job} run failed for good (${what})`
            : lost
              ? `${n} ${r.job} runs lost with their workers (${what})`
              : `${n} ${r.job} runs failed for good (${what}, ${code})`,
        message:
          (r.n === 1
            ? `${lost ? 'Run lost with its worker' : `Run failed after ${r.attempts} attempt(s)`} at ${iso(r.last_at)}${why}
`
            : `${n} runs ${lost ? 'lost with their workers' : 'failed for good'} with ${code}, from ${iso(r.first_at)} to ${iso(r.last_at)}; the latest${why}
`) +
          `job ${r.job}, ${what}, run${r.n === 1 ? '' : 's'} ${r.ids.join(', ')}${more}
` +
          `Look: ${lookAt(o.alertLinkBaseUrl, r.n === 1 ? `/api/runs/${r.ids[0]}` : look)}; run again: POST /api/dead-letters/${r.n === 1 ? r.ids[0] : '<id>'}/requeue`,
        details: {
          count: capped ? DEAD_LETTER_GROUP_CAP : r.n,
          ...(capped ? { count_is_more_than: DEAD_LETTER_GROUP_CAP } : {}),
          run_ids: r.ids,
          job: r.job,
          schedule_id: r.schedule_id,
          schedule: r.schedule_name,
          error_code: r.code,
          first_failed_at: r.first_at,
          last_failed_at: r.last_at,
          error: r.error,
          ...(r.n === 1 ? { run_id: r.ids[0], trigger: r.trigger } : {}),
        },
      });
    }
    // Alerts opened one per run before grouping (key run_failed:<run id>) stay open, as they
    // are, while their run is still a dead letter: never a RESOLVED for a run that is not.
    const legacy = open.filter((a) => (a.kind === 'run_failed' || a.kind === 'run_lost') && /^run_(failed|lost):[0-9a-f-]{36}$/.test(a.key));
    if (legacy.length > 0) {
      const ids = legacy.map((a) => a.key.slice(a.key.indexOf(':') + 1));
      const dead = await sql<{ id: string }>`
        select id::text as id from wombat.runs where id = any(${ids}::uuid[]) and state = 'failed' and requeued_as is null`.execute(db);
      const still = new Set(dead.rows.map((d) => d.id));
      for (const a of legacy) {
        if (!still.has(a.key.slice(a.key.indexOf(':') + 1))) continue;
        out.push({ key: a.key, kind: a.kind as AlertKind, severity: a.severity, subject: a.subject, message: a.message, details: a.details as Record<string, unknown> });
      }
    }
    return out;
  },
};

/** Occurrences missed (engine down past the grace) since the schedule last completed a run. */
const missedOccurrences: Gatherer = {
  kinds: ['occurrence_missed'],
  async run(db, o) {
    const { rows } = await sql<{ schedule_id: number; name: string; job: string; n: number; since: Date; last: Date }>`
      select r.schedule_id, s.name, s.job, count(*)::int as n, min(r.scheduled_for) as since, max(r.scheduled_for) as last
      from wombat.runs r join wombat.schedules s on s.id = r.schedule_id
      where r.trigger = 'schedule' and r.state = 'missed' and r.created_at > now() - make_interval(hours => ${o.alertLookbackHours})
        and not exists (select 1 from wombat.runs c where c.schedule_id = r.schedule_id and c.state = 'completed' and c.scheduled_for > r.scheduled_for)
      group by r.schedule_id, s.name, s.job`.execute(db);
    return rows.map((r) => ({
      key: `occurrence_missed:${r.schedule_id}`,
      kind: 'occurrence_missed',
      severity: 'warning',
      subject: `schedule ${r.name} missed ${r.n} occurrence(s)`,
      message:
        `${r.n} occurrence(s) of ${r.name} (job ${r.job}) were missed (no engine published them within the grace), from ${iso(r.since)} to ${iso(r.last)}; ` +
        `none has completed since.\nLook: ${lookAt(o.alertLinkBaseUrl, `/api/runs?schedule=${r.schedule_id}&state=missed`)}`,
      details: { schedule_id: r.schedule_id, schedule: r.name, missed: r.n, since: r.since, last: r.last },
    }));
  },
};

/** The latest N or more occurrences of a schedule were all skipped (overlap policy; runs skipped waiting for prerequisites are dependency_skipped's). */
const overlapSkips: Gatherer = {
  kinds: ['overlap_skipped'],
  async run(db, o) {
    const { rows } = await sql<{ schedule_id: number; name: string; job: string; streak: number; since: Date }>`
      with sk as (
        select distinct schedule_id from wombat.runs
        where trigger = 'schedule' and state = 'skipped' and not starts_with(coalesce(reason, ''), 'dependency_')
          and created_at > now() - make_interval(hours => ${o.alertLookbackHours}))
      select sk.schedule_id, s.name, s.job, st.streak, st.since
      from sk join wombat.schedules s on s.id = sk.schedule_id
      cross join lateral (
        select count(*)::int as streak, min(r.scheduled_for) as since from wombat.runs r
        where r.schedule_id = sk.schedule_id and r.trigger = 'schedule' and r.state = 'skipped' and not starts_with(coalesce(r.reason, ''), 'dependency_')
          and r.scheduled_for > coalesce((select max(x.scheduled_for) from wombat.runs x
                                          where x.schedule_id = sk.schedule_id and x.trigger = 'schedule' and x.state <> 'skipped'), '-infinity')
      ) st
      where st.streak >= ${o.alertOverlapSkips}`.execute(db);
    return rows.map((r) => ({
      key: `overlap_skipped:${r.schedule_id}`,
      kind: 'overlap_skipped',
      severity: 'warning',
      subject: `schedule ${r.name} skipped ${r.streak} times in a row`,
      message:
        `The last ${r.streak} occurrences of ${r.name} (job ${r.job}), since ${iso(r.since)}, were skipped because an earlier run was still queued or running.\n` +
        `Look: ${lookAt(o.alertLinkBaseUrl, `/api/runs?schedule=${r.schedule_id}`)}`,
      details: { schedule_id: r.schedule_id, schedule: r.name, streak: r.streak, since: r.since },
    }));
  },
};

function triggerOf(r: { kind: string; cron: string | null; every: string | null; every_seconds: number | null; times: string[] | null }): ScheduleTrigger {
  if (r.kind === 'cron') return { kind: 'cron', cron: r.cron! };
  if (r.kind === 'every') return { kind: 'every', every: r.every!, everySeconds: r.every_seconds! };
  return { kind: 'times', times: r.times! };
}

/** An active schedule has not completed a run for longer than its expected interval x its factor. */
const staleSchedules: Gatherer = {
  kinds: ['schedule_stale'],
  async run(db, o, { nowMs }) {
    const { rows } = await sql<{
      id: number;
      name: string;
      job: string;
      kind: string;
      cron: string | null;
      every: string | null;
      every_seconds: number | null;
      times: string[] | null;
      timezone: string;
      factor: number;
      updated_at: Date;
      last_ok: Date | null;
    }>`
      select s.id, s.name, s.job, s.kind, s.cron, s.every, s.every_seconds, s.times, s.timezone, s.updated_at,
             coalesce(s.alert_stale_factor, case when s.built_in then ${o.alertStaleFactor}::float8 else 0 end) as factor,
             (select max(r.finished_at) from wombat.runs r where r.schedule_id = s.id and r.state = 'completed') as last_ok
      from wombat.schedules s
      where s.status = 'active' and coalesce(s.alert_stale_factor, case when s.built_in then ${o.alertStaleFactor}::float8 else 0 end) > 0`.execute(db);
    const out: Condition[] = [];
    for (const r of rows) {
      let intervalMs: number | null;
      try {
        intervalMs = expectedIntervalMs(nextOccurrences({ trigger: triggerOf(r), timezone: r.timezone }, new Date(nowMs), 8));
      } catch {
        continue; // a definition the engine cannot read either; the engine logs it
      }
      if (intervalMs === null) continue;
      // Never succeeded: count from the last definition or status change (creation, resume).
      const fromMs = Math.max(r.last_ok ? new Date(r.last_ok).getTime() : 0, new Date(r.updated_at).getTime());
      const limitMs = intervalMs * r.factor;
      if (nowMs - fromMs <= limitMs) continue;
      const hours = (ms: number) => `${Math.round((ms / 3_600_000) * 10) / 10} h`;
      out.push({
        key: `schedule_stale:${r.id}`,
        kind: 'schedule_stale',
        severity: 'critical',
        subject: `schedule ${r.name} has not succeeded for ${hours(nowMs - fromMs)}`,
        message:
          `${r.name} (job ${r.job}) last completed a run ${r.last_ok ? `at ${iso(r.last_ok)}` : 'never'}; it is expected every ${hours(intervalMs)} ` +
          `and alerts after ${r.factor} x that (${hours(limitMs)}).\nLook: ${lookAt(o.alertLinkBaseUrl, `/api/runs?schedule=${r.id}`)}`,
        details: { schedule_id: r.id, schedule: r.name, last_ok: r.last_ok, expected_interval_seconds: intervalMs / 1000, factor: r.factor },
      });
    }
    return out;
  },
};

/** No engine alive with the scheduler enabled. (With every engine dead nobody is left to send: see deploy/prometheus.) */
const engines: Gatherer = {
  kinds: ['no_engine'],
  async run(db, o) {
    const { rows } = await sql<{ live: number; live_enabled: number; last_beat: Date | null }>`
      select count(*) filter (where alive)::int as live, count(*) filter (where alive and enabled)::int as live_enabled, max(last_beat_at) filter (where enabled) as last_beat
      from (select enabled, last_beat_at, stopped_at is null and last_beat_at > now() - make_interval(secs => heartbeat_interval_ms * 3 / 1000.0) as alive
            from wombat.engines) e`.execute(db);
    const r = rows[0]!;
    if (r.live_enabled > 0) return [];
    return [
      {
        key: 'no_engine',
        kind: 'no_engine',
        severity: 'critical',
        subject: 'no live scheduler-engine is publishing schedules',
        message: `${r.live} engine(s) alive, none with ENABLE_SCHEDULER=true; the last scheduling engine beat at ${iso(r.last_beat)}. Scheduled collection is not running.\nLook: ${lookAt(o.alertLinkBaseUrl, '/api/status')}`,
        details: { live: r.live, live_enabled: r.live_enabled, last_beat: r.last_beat },
      },
    ];
  },
};

/** Live workers per queue served by any registered worker: at or below the thresholds. */
const workers: Gatherer = {
  kinds: ['workers_low'],
  async run(db, o) {
    const [{ exists } = { exists: false }] = (await sql<{ exists: boolean }>`select to_regclass('wombat.workers') is not null as exists`.execute(db)).rows;
    if (!exists) return [];
    const { rows } = await sql<{ queue: string; live: number }>`
      select q.queue, count(*) filter (where w.stopped_at is null and w.last_beat_at > now() - make_interval(secs => w.heartbeat_interval_ms * 3 / 1000.0))::int as live
      from wombat.workers w cross join lateral unnest(w.queues) as q(queue)
      group by q.queue order by q.queue`.execute(db);
    const low = rows.map((r) => ({ ...r, level: levelAtOrBelow(r.live, o.alertWorkersWarning, o.alertWorkersCritical) })).filter((r) => r.level !== null);
    if (low.length === 0) return [];
    const severity = low.some((r) => r.level === 'critical') ? 'critical' : 'warning';
    return [
      {
        key: 'workers_low',
        kind: 'workers_low',
        severity,
        subject: `too few live workers: ${low.map((r) => `${r.queue} ${r.live}`).join(', ')}`,
        message: `Live workers per queue (warning at ${o.alertWorkersWarning} or fewer, critical at ${o.alertWorkersCritical} or fewer): ${low.map((r) => `${r.queue}: ${r.live} (${r.level})`).join(', ')}.\nLook: ${lookAt(o.alertLinkBaseUrl, '/api/status')}`,
        details: { queues: Object.fromEntries(low.map((r) => [r.queue, r.live])) },
      },
    ];
  },
};

/**
 * Jobs waiting (ready to start) per pg-boss queue, counted up to one past the critical level: a
 * backlog of a million costs what one of ALERT_QUEUE_LENGTH_CRITICAL does (pg-boss's index of
 * waiting jobs, per queue), and a queue past it reads "more than" the level. The head of the
 * queue (the next job to start) says since when it waits.
 */
const queueLength: Gatherer = {
  kinds: ['queue_length'],
  async run(db, o) {
    const cap = o.alertQueueLengthCritical + 1;
    const job = sql.table(`${BOSS_SCHEMA}.job`);
    const { rows } = await sql<{ name: string; n: number; oldest: Date }>`
      select q.name, c.n, h.oldest
      from ${sql.table(`${BOSS_SCHEMA}.queue`)} q
      cross join lateral (
        select count(*)::int as n from (
          select 1 from ${job} j where j.name = q.name and j.state < 'active' and not j.blocked and j.start_after <= now() limit ${cap}) w) c
      cross join lateral (
        select j.created_on as oldest from ${job} j where j.name = q.name and j.state < 'active' and not j.blocked and j.start_after <= now()
        order by j.priority desc, j.created_on limit 1) h
      where c.n > 0`.execute(db);
    return rows.flatMap((r) => {
      const level = levelAbove(r.n, o.alertQueueLengthWarning, o.alertQueueLengthCritical);
      if (!level) return [];
      const waiting = r.n >= cap ? `more than ${o.alertQueueLengthCritical}` : String(r.n);
      return [
        {
          key: `queue_length:${r.name}`,
          kind: 'queue_length',
          severity: level,
          subject: `queue ${r.name} has ${waiting} jobs waiting`,
          message: `${waiting} ${r.name} jobs are waiting for a worker (warning above ${o.alertQueueLengthWarning}, critical above ${o.alertQueueLengthCritical}); the next to start waits since ${iso(r.oldest)}.\nLook: ${lookAt(o.alertLinkBaseUrl, '/api/status')}`,
          details: { queue: r.name, waiting: r.n, ...(r.n >= cap ? { atLeast: true } : {}), oldest: r.oldest },
        } satisfies Condition,
      ];
    });
  },
};

/** Failure rate and average run time of runs finished in the window; dead letters now. */
const runThresholds: Gatherer = {
  kinds: ['failure_rate', 'run_time', 'dead_letters'],
  async run(db, o) {
    const window = o.alertWindowMinutes;
    // From the run roll-ups (the window's minutes, never the runs; it starts on a whole minute).
    const finished = await readRunCounts(db as Kysely<RunTables>, { kind: 'finished', windowSeconds: window * 60 });
    const perJob = new Map<string, { job: string; completed: number; failed: number; started: number; seconds: number }>();
    for (const f of finished) {
      if (f.state !== 'completed' && f.state !== 'failed') continue;
      const j = perJob.get(f.job) ?? { job: f.job, completed: 0, failed: 0, started: 0, seconds: 0 };
      j[f.state] += f.n;
      if (f.bucket >= 0) {
        j.started += f.n;
        j.seconds += f.duration_s;
      }
      perJob.set(f.job, j);
    }
    const jobs = { rows: [...perJob.values()].map((j) => ({ job: j.job, completed: j.completed, failed: j.failed, avg_s: j.started === 0 ? null : j.seconds / j.started })) };
    const deadRows = await readRunCounts(db as Kysely<RunTables>, { kind: 'dead_letters' });
    const dead = { rows: [{ n: deadRows.reduce((a, r) => a + r.n, 0) }] };
    const out: Condition[] = [];
    const completed = jobs.rows.reduce((s, r) => s + r.completed, 0);
    const failed = jobs.rows.reduce((s, r) => s + r.failed, 0);
    if (completed + failed >= o.alertFailureRateMinRuns) {
      const pct = (100 * failed) / (completed + failed);
      const level = levelAbove(pct, o.alertFailureRateWarningPct, o.alertFailureRateCriticalPct);
      if (level) {
        out.push({
          key: 'failure_rate',
          kind: 'failure_rate',
          severity: level,
          subject: `${pct.toFixed(1)}% of runs failed in the last ${window} min`,
          message: `${failed} of ${completed + failed} runs finished in the last ${window} min failed (warning above ${o.alertFailureRateWarningPct}%, critical above ${o.alertFailureRateCriticalPct}%): ${jobs.rows
            .filter((r) => r.failed > 0)
            .map((r) => `${r.job} ${r.failed}/${r.completed + r.failed}`)
            .join(', ')}.\nLook: ${lookAt(o.alertLinkBaseUrl, '/api/dead-letters')}`,
          details: { failed, finished: completed + failed, percent: Math.round(pct * 10) / 10 },
        });
      }
    }
    for (const r of jobs.rows) {
      if (r.avg_s === null) continue;
      const level = levelAbove(r.avg_s, o.alertRunTimeWarningSeconds, o.alertRunTimeCriticalSeconds);
      if (!level) continue;
      out.push({
        key: `run_time:${r.job}`,
        kind: 'run_time',
        severity: level,
        subject: `${r.job} runs take ${Math.round(r.avg_s)} s on average`,
        message: `${r.job} runs finished in the last ${window} min took ${Math.round(r.avg_s)} s on average (warning above ${o.alertRunTimeWarningSeconds} s, critical above ${o.alertRunTimeCriticalSeconds} s).\nLook: ${lookAt(o.alertLinkBaseUrl, `/api/runs?job=${r.job}`)}`,
        details: { job: r.job, average_seconds: Math.round(r.avg_s * 10) / 10, runs: r.completed + r.failed },
      });
    }
    const n = dead.rows[0]?.n ?? 0;
    const level = levelAbove(n, o.alertDeadLettersWarning, o.alertDeadLettersCritical);
    if (level) {
      out.push({
        key: 'dead_letters',
        kind: 'dead_letters',
        severity: level,
        subject: `${n} dead letters`,
        message: `${n} failed runs are waiting to be requeued or dropped (warning above ${o.alertDeadLettersWarning}, critical above ${o.alertDeadLettersCritical}).\nLook: ${lookAt(o.alertLinkBaseUrl, '/api/dead-letters')}`,
        details: { dead_letters: n },
      });
    }
    return out;
  },
};

const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;

/** The database and the disks under it: connections, a transaction held open, dead rows of the hot tables, full file systems. */
const database: Gatherer = {
  kinds: ['db_connections', 'transaction_age', 'dead_rows', 'disk_space'],
  async run(db, o) {
    // Every evaluation: without the sizes, whose cost grows with the number of files.
    const h = await readDatabaseHealth(db, o.watchedPaths ?? [], { sizes: false });
    const out: Condition[] = [];
    const look = lookAt(o.alertLinkBaseUrl, '/api/overview');
    const pct = 100 * h.connections.ratio;
    const conn = levelAbove(pct, o.alertDbConnectionsWarningPct, o.alertDbConnectionsCriticalPct);
    if (conn) {
      out.push({
        key: 'db_connections',
        kind: 'db_connections',
        severity: conn,
        subject: `PostgreSQL connections at ${pct.toFixed(0)}% (${h.connections.used} of ${h.connections.max})`,
        message:
          `${h.connections.used} client connections of max_connections ${h.connections.max} are in use (warning above ${o.alertDbConnectionsWarningPct}%, critical above ${o.alertDbConnectionsCriticalPct}%); ` +
          `at the limit every new connection is refused and services stall. Fewer workers or pool connections, or a pooler (deploy/README.md).\nLook: ${look}`,
        details: { ...h.connections },
      });
    }
    if (h.oldest_transaction_s !== null) {
      const age = levelAbove(h.oldest_transaction_s, o.alertTransactionAgeWarningSeconds, o.alertTransactionAgeCriticalSeconds);
      if (age) {
        out.push({
          key: 'transaction_age',
          kind: 'transaction_age',
          severity: age,
          subject: `a PostgreSQL transaction has been open for ${Math.round(h.oldest_transaction_s / 60)} min`,
          message:
            `The oldest open transaction started ${Math.round(h.oldest_transaction_s)} s ago (warning above ${o.alertTransactionAgeWarningSeconds} s, critical above ${o.alertTransactionAgeCriticalSeconds} s). ` +
            `While it is open, vacuum cannot remove the rows finished jobs leave behind, and the queue's tables grow. Find it with: select pid, usename, application_name, state, xact_start from pg_stat_activity order by xact_start;\nLook: ${look}`,
          details: { oldest_transaction_seconds: h.oldest_transaction_s },
        });
      }
    }
    for (const t of h.hot_tables) {
      if (t.dead_rows < o.alertDeadRowsMinRows) continue;
      const level = levelAbove(100 * t.dead_ratio, o.alertDeadRowsWarningPct, o.alertDeadRowsCriticalPct);
      if (!level) continue;
      out.push({
        key: `dead_rows:${t.table}`,
        kind: 'dead_rows',
        severity: level,
        subject: `${t.table} is ${(100 * t.dead_ratio).toFixed(0)}% dead rows`,
        message:
          `${t.table} has ${t.dead_rows} dead rows beside ${t.live_rows} live ones (warning above ${o.alertDeadRowsWarningPct}%, critical above ${o.alertDeadRowsCriticalPct}%); last vacuumed ${iso(t.last_vacuum)}. ` +
          `Autovacuum is behind or blocked by a long transaction.\nLook: ${look}`,
        details: { ...t },
      });
    }
    for (const f of h.filesystems) {
      const level = levelAbove(100 * f.used_ratio, o.alertDiskWarningPct, o.alertDiskCriticalPct);
      if (!level) continue;
      out.push({
        key: `disk_space:${f.role}`,
        kind: 'disk_space',
        severity: level,
        subject: `the file system of ${f.role} is ${(100 * f.used_ratio).toFixed(0)}% full`,
        message:
          `${f.path} (${f.role}) has ${gib(f.free_bytes)} free of ${gib(f.size_bytes)} (warning above ${o.alertDiskWarningPct}% used, critical above ${o.alertDiskCriticalPct}%).\nLook: ${look}`,
        details: { ...f },
      });
    }
    return out;
  },
};

const dependencySkipped: Gatherer = {
  kinds: ['dependency_skipped'],
  run: (db, o) => dependencySkips(db, { alertLookbackHours: o.alertLookbackHours, look: (path) => lookAt(o.alertLinkBaseUrl, path) }),
};

const GATHERERS: Gatherer[] = [failedRuns, missedOccurrences, overlapSkips, dependencySkipped, staleSchedules, engines, workers, queueLength, runThresholds, database];

/**
 * Every condition that holds now. A gatherer whose query fails leaves its kinds
 * unevaluated (their open alerts stay as they are) instead of failing the pass.
 */
export async function gatherConditions(
  db: Transaction<any>, // eslint-disable-line @typescript-eslint/no-explicit-any
  o: ConditionOptions,
  ctx: { open: OpenAlert[]; nowMs: number },
): Promise<{ conditions: Condition[]; unevaluated: Set<string>; errors: unknown[] }> {
  const conditions: Condition[] = [];
  const unevaluated = new Set<string>();
  const errors: unknown[] = [];
  // One after another, each in a savepoint: in the evaluator's transaction a
  // failed statement would otherwise abort every later one.
  for (const g of GATHERERS) {
    await sql`savepoint alert_gather`.execute(db);
    try {
      conditions.push(...(await g.run(db, o, ctx)));
      await sql`release savepoint alert_gather`.execute(db);
    } catch (err) {
      await sql`rollback to savepoint alert_gather`.execute(db);
      for (const k of g.kinds) unevaluated.add(k);
      errors.push(err);
    }
  }
  return { conditions, unevaluated, errors };
}
