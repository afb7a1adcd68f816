import type { Sql } from '@wombat/core/platform';
import { JOB_TYPES } from '@wombat/core/jobs';
import { queueSettingsView, readQueueSettings } from '@wombat/core/workers';
import { QUEUE_SIDE_OF_RUN_STATE, readRunCounts, runLatenessBucketMs } from '@wombat/core/runs';
import { type DatabaseHealth, DEFAULT_THRESHOLDS, type Level, levelOf, type Thresholds } from '@wombat/core/alerts';

/** Failure rate and average run time look at runs finished within this window, as /metrics does. */
export const OVERVIEW_WINDOW_SECONDS = 3600;
/** runs_24h and the hours count runs created within this window. */
const RUNS_WINDOW_SECONDS = 86_400;

export interface Figure {
  value: number;
  level: Level;
}

export interface Overview {
  generated_at: string;
  engines: { id: string; host: string; pid: number; alive: boolean; enabled: boolean; heartbeat_age_s: number }[];
  workers: {
    id: string;
    host: string;
    pid: number;
    queues: string[];
    /** Per queue, fetch loops x batch size and their product; null for a worker that did not record them. */
    queue_settings: ReturnType<typeof queueSettingsView>;
    alive: boolean;
    heartbeat_age_s: number;
    runs_in_hand: number;
    rss_bytes: number | null;
  }[];
  /** false while the worker registry does not exist in this database yet. */
  workers_known: boolean;
  live_workers: Figure;
  queues: { queue: string; depth: Figure; active: number; live_workers: number | null }[];
  runs_24h: Record<string, number>;
  /** Hourly buckets of the last 24 h: hour start, runs created by state, start lateness p50/p99 of scheduled runs. */
  hours: { hour: string; states: Record<string, number>; lateness_p50_ms: number | null; lateness_p99_ms: number | null }[];
  failure_ratio: Figure;
  avg_run_seconds: Figure;
  dead_letters: Figure;
  /** `count`: runs a grouped alert (run_failed, run_lost) stands for. */
  /** count: a grouped alert's runs; count_more: it has more than count (the alert counts up to a cap). */
  alerts: { id: string; severity: string; subject: string; opened_at: string; count: number | null; count_more: boolean }[] | null;
  thresholds: Thresholds;
  /** The database and the disks under it (read at most every 30 s); null when it could not be read. */
  database: {
    size_bytes: number;
    growth_bytes_per_day: number | null;
    connections: Figure & { used: number; max: number };
    oldest_transaction_s: Figure | null;
    largest_tables: DatabaseHealth['largest_tables'];
    hot_tables: (DatabaseHealth['hot_tables'][number] & { level: Level })[];
    filesystems: (DatabaseHealth['filesystems'][number] & { level: Level })[];
  } | null;
}

async function exists(sql: Sql, name: string): Promise<boolean> {
  const [row] = await sql<{ ok: boolean }[]>`select to_regclass(${name}) is not null as ok`;
  return row?.ok === true;
}

/** A percentile of start lateness from the roll-ups' 5%-wide buckets: the upper bound of the bucket it falls in. */
function latenessPercentile(buckets: Map<number, number>, p: number): number | null {
  const sorted = [...buckets].filter(([, n]) => n > 0).sort(([a], [b]) => a - b);
  const total = sorted.reduce((a, [, n]) => a + n, 0);
  if (total === 0) return null;
  let seen = 0;
  for (const [bucket, n] of sorted) {
    seen += n;
    if (seen >= Math.max(1, Math.ceil(p * total))) return Math.round(runLatenessBucketMs(bucket));
  }
  return null;
}

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

/**
 * Everything the dashboard's overview shows, in a handful of statements. Run
 * counts come from the run roll-ups (readRunCounts: the minutes and hours of the
 * window, never the runs; windows start on a whole minute), start lateness from
 * their hourly lateness buckets (percentiles within 5%, the first hour whole), so
 * the page costs the same with a long or busy history.
 */
export async function readOverview(sql: Sql, thresholds: Thresholds = DEFAULT_THRESHOLDS, databaseHealth?: () => Promise<DatabaseHealth>): Promise<Overview> {
  const [hasWorkers, hasAlerts, health] = await Promise.all([
    exists(sql, 'wombat.workers'),
    exists(sql, 'wombat.alerts'),
    databaseHealth ? databaseHealth().catch(() => null) : null,
  ]);
  const [engines, workers, queueRows, createdRows, latenessRows, finishedRows, deadRows, alerts] = await Promise.all([
    sql<{ id: string; host: string; pid: number; alive: boolean; enabled: boolean; age: number }[]>`
      select id, host, pid, enabled,
        stopped_at is null and last_beat_at > now() - make_interval(secs => heartbeat_interval_ms * 3 / 1000.0) as alive,
        extract(epoch from now() - last_beat_at)::float8 as age
      from wombat.engines where stopped_at is null or stopped_at > now() - interval '1 hour'
      order by last_beat_at desc limit 50`,
    hasWorkers
      ? sql<{ id: string; host: string; pid: number; queues: string[]; queue_settings: unknown; alive: boolean; age: number; runs_in_hand: number; rss_bytes: string | null }[]>`
          select id, host, pid, queues, queue_settings, runs_in_hand, rss_bytes,
            stopped_at is null and last_beat_at > now() - make_interval(secs => heartbeat_interval_ms * 3 / 1000.0) as alive,
            extract(epoch from now() - last_beat_at)::float8 as age
          from wombat.workers where stopped_at is null or stopped_at > now() - interval '1 hour'
          order by last_beat_at desc limit 200`
      : Promise.resolve([]),
    readRunCounts(sql, { kind: 'current' }),
    readRunCounts(sql, { kind: 'created', windowSeconds: RUNS_WINDOW_SECONDS, hourly: true }),
    readRunCounts(sql, { kind: 'lateness_hourly', windowSeconds: RUNS_WINDOW_SECONDS, hourly: true }),
    readRunCounts(sql, { kind: 'finished', windowSeconds: OVERVIEW_WINDOW_SECONDS }),
    readRunCounts(sql, { kind: 'dead_letters' }),
    hasAlerts
      ? sql<{ id: string; severity: string; subject: string; opened_at: Date; count: number | null; count_more: boolean }[]>`
          select id::text, severity, subject, opened_at,
                 case when jsonb_typeof(details->'count') = 'number' then (details->>'count')::int end as count,
                 details ? 'count_is_more_than' as count_more
          from wombat.alerts where state = 'open' order by opened_at desc limit 50`
      : Promise.resolve(null),
  ]);

  const liveByQueue = new Map<string, number>();
  for (const w of workers) if (w.alive) for (const q of w.queues) liveByQueue.set(q, (liveByQueue.get(q) ?? 0) + 1);
  const queues = JOB_TYPES.map((queue) => {
    const depth = queueRows.filter((r) => r.job === queue && QUEUE_SIDE_OF_RUN_STATE[r.state] === 'waiting').reduce((a, r) => a + r.n, 0);
    const active = queueRows.filter((r) => r.job === queue && QUEUE_SIDE_OF_RUN_STATE[r.state] === 'active').reduce((a, r) => a + r.n, 0);
    return { queue, depth: { value: depth, level: levelOf(depth, thresholds.queueDepth) }, active, live_workers: hasWorkers ? (liveByQueue.get(queue) ?? 0) : null };
  });

  const hours = new Map<string, Overview['hours'][number]>();
  const hourOf = (d: Date) => {
    const key = new Date(d).toISOString();
    const h = hours.get(key) ?? { hour: key, states: {}, lateness_p50_ms: null, lateness_p99_ms: null };
    hours.set(key, h);
    return h;
  };
  const runs24h: Record<string, number> = {};
  for (const r of createdRows) {
    const states = hourOf(r.hour!).states;
    states[r.state] = (states[r.state] ?? 0) + r.n;
    runs24h[r.state] = (runs24h[r.state] ?? 0) + r.n;
  }
  const lateness = new Map<string, Map<number, number>>();
  for (const r of latenessRows) {
    const key = new Date(r.hour!).toISOString();
    const buckets = lateness.get(key) ?? new Map<number, number>();
    buckets.set(r.bucket, (buckets.get(r.bucket) ?? 0) + r.n);
    lateness.set(key, buckets);
  }
  for (const [key, buckets] of lateness) {
    const h = hourOf(new Date(key));
    h.lateness_p50_ms = latenessPercentile(buckets, 0.5);
    h.lateness_p99_ms = latenessPercentile(buckets, 0.99);
  }

  const w = { completed: 0, failed: 0, started: 0, seconds: 0 };
  for (const r of finishedRows) {
    if (r.state !== 'completed' && r.state !== 'failed') continue;
    w[r.state] += r.n;
    if (r.bucket >= 0) {
      w.started += r.n;
      w.seconds += r.duration_s;
    }
  }
  const finished = w.completed + w.failed;
  const failureRatio = finished === 0 ? 0 : w.failed / finished;
  const avgRun = w.started === 0 ? 0 : w.seconds / w.started;
  const dead = deadRows.reduce((a, r) => a + r.n, 0);
  const live = workers.filter((x) => x.alive).length;
  return {
    generated_at: new Date().toISOString(),
    engines: engines.map((e) => ({ id: e.id, host: e.host, pid: e.pid, alive: e.alive, enabled: e.enabled, heartbeat_age_s: Math.round(e.age * 10) / 10 })),
    workers: workers.map((x) => ({
      id: x.id,
      host: x.host,
      pid: x.pid,
      queues: x.queues,
      queue_settings: queueSettingsView(readQueueSettings(x.queue_settings)),
      alive: x.alive,
      heartbeat_age_s: Math.round(x.age * 10) / 10,
      runs_in_hand: x.runs_in_hand,
      rss_bytes: num(x.rss_bytes),
    })),
    workers_known: hasWorkers,
    live_workers: { value: live, level: hasWorkers ? levelOf(live, thresholds.liveWorkers) : 'ok' },
    queues,
    runs_24h: runs24h,
    hours: [...hours.values()].sort((a, b) => a.hour.localeCompare(b.hour)),
    failure_ratio: { value: Math.round(failureRatio * 10000) / 10000, level: levelOf(failureRatio, thresholds.failureRatio) },
    avg_run_seconds: { value: Math.round(avgRun * 1000) / 1000, level: levelOf(avgRun, thresholds.avgRunSeconds) },
    dead_letters: { value: dead, level: levelOf(dead, thresholds.deadLetters) },
    alerts: alerts === null ? null : alerts.map((a) => ({ id: a.id, severity: a.severity, subject: a.subject, opened_at: new Date(a.opened_at).toISOString(), count: a.count, count_more: a.count_more === true })),
    thresholds,
    database: health && {
      size_bytes: health.size_bytes,
      growth_bytes_per_day: health.growth_bytes_per_day,
      connections: { value: health.connections.ratio, level: levelOf(health.connections.ratio, thresholds.dbConnections), used: health.connections.used, max: health.connections.max },
      oldest_transaction_s: health.oldest_transaction_s === null ? null : { value: health.oldest_transaction_s, level: levelOf(health.oldest_transaction_s, thresholds.transactionAge) },
      largest_tables: health.largest_tables,
      // A small table's share of dead rows means nothing: coloured from the alerts' default least count.
      hot_tables: health.hot_tables.map((t) => ({ ...t, level: t.dead_rows < 10_000 ? 'ok' : levelOf(t.dead_ratio, thresholds.deadRows) })),
      filesystems: health.filesystems.map((f) => ({ ...f, level: levelOf(f.used_ratio, thresholds.diskUsed) })),
    },
  };
}
