import type { Sql } from '@wombat/core/platform';
import { JOB_TYPES } from '@wombat/core/jobs';
import { nextOccurrences, type ScheduleTrigger } from '@wombat/core/schedules';
import { ACTIVE_RUN_STATES, QUEUE_SIDE_OF_RUN_STATE, readRunCounts, RUN_DURATION_BUCKETS_SECONDS } from '@wombat/core/runs';
import { type DatabaseHealth, expectedIntervalMs } from '@wombat/core/alerts';
import { Counter, Gauge, Registry } from 'prom-client';

/** Upper bounds of the run duration histogram, in seconds (the run roll-ups' buckets). */
const DURATION_BUCKETS_SECONDS = RUN_DURATION_BUCKETS_SECONDS;
/** Windowed gauges (finished runs, failure ratio, average duration, publish lag) look this far back (from a whole minute). */
export const METRICS_WINDOW_SECONDS = 3600;
const COUNTED_FINISHES = new Set(['completed', 'failed', 'cancelled']);

export interface MetricsOptions {
  /** ALERT_STALE_FACTOR: built-in schedules get a stale limit of interval x this (0: none). */
  staleFactor: number;
  /** The database and its disks (wombat_db_*, wombat_filesystem_*); unset: not exported. */
  databaseHealth?: () => Promise<DatabaseHealth>;
}

export interface Metrics {
  registry: Registry;
  /** Reads Postgres and renders the text exposition. */
  render(): Promise<string>;
  contentType: string;
}

async function tableExists(sql: Sql, name: string): Promise<boolean> {
  const [row] = await sql<{ exists: boolean }[]>`select to_regclass(${name}) is not null as exists`;
  return row?.exists === true;
}

function triggerOf(r: { kind: string; cron: string | null; every: string | null; every_seconds: number | null; times: string[] | null }): ScheduleTrigger {
  if (r.kind === 'cron') return { kind: 'cron', cron: r.cron! };
  if (r.kind === 'every') return { kind: 'every', every: r.every!, everySeconds: r.every_seconds! };
  return { kind: 'times', times: r.times! };
}

/**
 * The api's Prometheus metrics (prom-client). Gauges are read from Postgres at
 * scrape time; counters and the duration histogram are cumulative, so rate()
 * and histogram_quantile() are right: the histogram and wombat_runs_finished_total
 * are the run roll-ups' finished_total counts (each run counted once as it
 * finishes; retention does not subtract), the alert counters come from a table
 * that is never purged. Run counts are read from the roll-ups, never by scanning
 * wombat.runs, so a scrape costs the same with any history.
 */
export function createMetrics(sql: Sql, opts: MetricsOptions = { staleFactor: 1.5 }): Metrics {
  const registry = new Registry();
  const r = [registry];
  const g = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name, help, labelNames, registers: r });
  const queueDepth = g('wombat_queue_depth', 'jobs waiting in each pg-boss queue (created or retry): its runs queued or retrying', ['queue']);
  const queueActive = g('wombat_queue_active_jobs', 'jobs a worker has fetched in each pg-boss queue: its runs running', ['queue']);
  const running = g('wombat_runs_running', 'runs in state running, by job', ['job']);
  const active = g('wombat_runs_active', 'unfinished runs by job and state (held, queued, running, retrying)', ['job', 'state']);
  const finishedWindow = g('wombat_runs_finished_window', `runs finished in the last ${METRICS_WINDOW_SECONDS} s, by job and state`, ['job', 'state']);
  const failureRatio = g('wombat_run_failure_ratio', `failed / (completed + failed) among runs finished in the last ${METRICS_WINDOW_SECONDS} s, by job`, ['job']);
  const avgDuration = g('wombat_run_duration_window_avg_seconds', `average duration of runs finished in the last ${METRICS_WINDOW_SECONDS} s, by job`, ['job']);
  // A cumulative histogram kept from SQL aggregates (prom-client's Histogram takes one observation
  // at a time; a burst of finished runs is one row per job here).
  const hist = new Map<string, { counts: number[]; sum: number; count: number }>();
  const durationName = 'wombat_run_duration_seconds';
  const durationHelp = 'duration (finished_at - started_at) of finished runs (completed, failed, cancelled), each counted once';
  registry.registerMetric({
    name: durationName,
    help: durationHelp,
    type: 'histogram',
    aggregator: 'sum',
    get: async () => ({
      name: durationName,
      help: durationHelp,
      type: 'histogram',
      aggregator: 'sum',
      values: [...hist].flatMap(([job, h]) => [
        ...DURATION_BUCKETS_SECONDS.map((le, i) => ({ metricName: `${durationName}_bucket`, labels: { job, le }, value: h.counts[i]! })),
        { metricName: `${durationName}_bucket`, labels: { job, le: '+Inf' }, value: h.count },
        { metricName: `${durationName}_sum`, labels: { job }, value: h.sum },
        { metricName: `${durationName}_count`, labels: { job }, value: h.count },
      ]),
    }),
    reset() {},
  } as never);
  const deadLetters = g('wombat_dead_letters', 'failed runs not yet requeued or purged');
  const engineAge = g('wombat_engine_heartbeat_age_seconds', 'seconds since each running scheduler-engine last wrote its heartbeat', ['engine', 'enabled']);
  const enginesLive = g('wombat_engines_live', 'scheduler-engines alive (beat within 3 intervals) with the scheduler enabled');
  const publishLag = g('wombat_schedule_publish_lag_seconds', "published_at - scheduled_for of each schedule's latest published occurrence", ['schedule_id', 'schedule']);
  const sinceSuccess = g('wombat_schedule_seconds_since_success', 'seconds since each active schedule last completed a run (or was created, resumed or edited)', ['schedule_id', 'schedule']);
  const staleAfter = g('wombat_schedule_stale_after_seconds', 'expected interval x alert factor of schedules that alert when they stop succeeding', ['schedule_id', 'schedule']);
  const workersLive = g('wombat_workers_live', 'live workers serving each queue', ['queue']);
  // Was wombat_workers_live_total: a gauge, and "_total" is for counters (promtool check metrics).
  const workersLiveTotal = g('wombat_worker_processes_live', 'live worker processes');
  const workerRss = g('wombat_worker_rss_bytes', 'resident memory of each live worker at its last heartbeat', ['worker', 'host', 'pid']);
  const workerRunsInHand = g('wombat_worker_runs_in_hand', 'runs each live worker holds at its last heartbeat', ['worker', 'host', 'pid']);
  const alertsOpen = g('wombat_alerts_open', 'open alerts by kind and severity', ['kind', 'severity']);
  const deliveriesPending = g('wombat_alert_deliveries_pending', 'alert messages waiting to be sent or retried, by channel', ['channel']);
  const dbSize = g('wombat_db_size_bytes', 'size of the database on disk (pg_database_size)');
  const dbGrowth = g('wombat_db_growth_bytes_per_day', 'growth of the database per day over the last week of daily samples');
  const dbConnections = g('wombat_db_connections', 'client connections to the server (pg_stat_activity)');
  const dbMaxConnections = g('wombat_db_max_connections', "the server's max_connections");
  const dbOldestTransaction = g('wombat_db_oldest_transaction_seconds', 'age of the oldest open transaction of another session (0: none)');
  const dbTableBytes = g('wombat_db_table_bytes', "size of Wombat's and pg-boss's largest tables, indexes and TOAST included", ['table']);
  const dbDeadRows = g('wombat_db_dead_rows', 'dead rows of the hot tables (runs, pg-boss jobs), partitions summed', ['table']);
  const dbLiveRows = g('wombat_db_live_rows', 'live rows of the hot tables, partitions summed', ['table']);
  const dbSinceVacuum = g('wombat_db_seconds_since_vacuum', 'seconds since a hot table (or its least recently vacuumed partition set) was last vacuumed', ['table']);
  const fsSize = g('wombat_filesystem_size_bytes', 'size of the file system holding each watched directory (data_root, backup_dir, database)', ['role']);
  const fsFree = g('wombat_filesystem_free_bytes', 'bytes free to Wombat on the file system holding each watched directory', ['role']);
  const raised = new Counter({ name: 'wombat_alerts_raised_total', help: 'alerts opened, by kind and severity', labelNames: ['kind', 'severity'], registers: r });
  const finishedTotal = new Counter({ name: 'wombat_runs_finished_total', help: 'runs that ran and finished (completed, failed for good, cancelled), by job and state', labelNames: ['job', 'state'], registers: r });
  const deliveryFailures = new Counter({ name: 'wombat_alert_delivery_failures_total', help: 'failed alert delivery attempts, by channel', labelNames: ['channel'], registers: r });
  const delivered = new Counter({ name: 'wombat_alert_deliveries_sent_total', help: 'alert messages a channel accepted, by channel', labelNames: ['channel'], registers: r });

  const lastCounter = new Map<string, number>();
  let scraping: Promise<string> | undefined;

  /** Adds what a never-decreasing table count grew by since the last scrape. */
  function feed(counter: Counter, key: string, labels: Record<string, string>, value: number): void {
    const before = lastCounter.get(key) ?? 0;
    if (value > before) counter.inc(labels, value - before);
    lastCounter.set(key, Math.max(before, value));
  }

  /** The duration histogram and wombat_runs_finished_total from the roll-ups' running totals. */
  async function observeFinished(): Promise<void> {
    const rows = await readRunCounts(sql, { kind: 'finished_total' });
    const next = new Map<string, { counts: number[]; sum: number; count: number }>();
    const perState = new Map<string, { job: string; state: string; n: number }>();
    for (const row of rows) {
      if (!COUNTED_FINISHES.has(row.state) || row.bucket < 0) continue;
      const s = perState.get(`${row.job}:${row.state}`) ?? { job: row.job, state: row.state, n: 0 };
      s.n += row.n;
      perState.set(`${row.job}:${row.state}`, s);
      const h = next.get(row.job) ?? { counts: DURATION_BUCKETS_SECONDS.map(() => 0), sum: 0, count: 0 };
      DURATION_BUCKETS_SECONDS.forEach((_, i) => {
        if (row.bucket <= i) h.counts[i]! += row.n;
      });
      h.sum += row.duration_s;
      h.count += row.n;
      next.set(row.job, h);
    }
    for (const s of perState.values()) feed(finishedTotal, `finished:${s.job}:${s.state}`, { job: s.job, state: s.state }, s.n);
    // A total only falls when wombat.runs is truncated or a finished run is rewritten: the
    // histogram keeps its counts then, as a counter must.
    for (const [job, h] of next) if (h.count >= (hist.get(job)?.count ?? 0)) hist.set(job, h);
  }

  async function refresh(): Promise<void> {
    const window = METRICS_WINDOW_SECONDS;
    const [currentRows, finishedRows, deadRows, hasWorkers, hasAlerts] = await Promise.all([
      readRunCounts(sql, { kind: 'current' }),
      readRunCounts(sql, { kind: 'finished', windowSeconds: window }),
      readRunCounts(sql, { kind: 'dead_letters' }),
      tableExists(sql, 'wombat.workers'),
      tableExists(sql, 'wombat.alerts'),
    ]);
    await observeFinished();

    for (const m of [queueDepth, queueActive, running, active, finishedWindow, failureRatio, avgDuration, engineAge, publishLag, sinceSuccess, staleAfter, workersLive, workerRss, workerRunsInHand, alertsOpen, deliveriesPending]) m.reset();
    for (const j of JOB_TYPES) {
      queueDepth.set({ queue: j }, 0);
      queueActive.set({ queue: j }, 0);
      running.set({ job: j }, 0);
    }
    // A queue's jobs are its runs': waiting (created or retry) while the run is queued or retrying,
    // active while it runs. The roll-ups count them without reading a backlog of a million.
    for (const q of currentRows) {
      const gauge = QUEUE_SIDE_OF_RUN_STATE[q.state];
      if (gauge) (gauge === 'active' ? queueActive : queueDepth).inc({ queue: q.job }, q.n);
    }
    for (const j of JOB_TYPES) for (const s of ACTIVE_RUN_STATES) active.set({ job: j, state: s }, 0);
    for (const a of currentRows.filter((r) => (ACTIVE_RUN_STATES as readonly string[]).includes(r.state))) {
      active.inc({ job: a.job, state: a.state }, a.n);
      if (a.state === 'running') running.inc({ job: a.job }, a.n);
    }
    const perJob = new Map<string, { completed: number; failed: number; n: number; sum: number }>();
    for (const f of finishedRows) {
      if (!COUNTED_FINISHES.has(f.state)) continue;
      finishedWindow.inc({ job: f.job, state: f.state }, f.n);
      const p = perJob.get(f.job) ?? { completed: 0, failed: 0, n: 0, sum: 0 };
      if (f.state === 'completed') p.completed += f.n;
      if (f.state === 'failed') p.failed += f.n;
      if (f.bucket >= 0) {
        p.n += f.n;
        p.sum += f.duration_s;
      }
      perJob.set(f.job, p);
    }
    for (const [job, p] of perJob) {
      if (p.completed + p.failed > 0) failureRatio.set({ job }, p.failed / (p.completed + p.failed));
      if (p.n > 0) avgDuration.set({ job }, p.sum / p.n);
    }
    deadLetters.set(deadRows.reduce((a, r) => a + r.n, 0));

    const engines = await sql<{ id: string; age: number; enabled: boolean; alive: boolean }[]>`
      select id, extract(epoch from now() - last_beat_at)::float8 as age, enabled,
             last_beat_at > now() - make_interval(secs => heartbeat_interval_ms * 3 / 1000.0) as alive
      from wombat.engines where stopped_at is null`;
    for (const e of engines) engineAge.set({ engine: e.id, enabled: String(e.enabled) }, Math.round(e.age * 1000) / 1000);
    enginesLive.set(engines.filter((e) => e.alive && e.enabled).length);

    // Each schedule's latest published occurrence: a short backward walk of its occurrence index.
    const lag = await sql<{ schedule_id: number; name: string; lag: number }[]>`
      select s.id as schedule_id, s.name, extract(epoch from r.published_at - r.scheduled_for)::float8 as lag
      from wombat.schedules s cross join lateral (
        select o.published_at, o.scheduled_for from wombat.runs o
        where o.schedule_id = s.id and o.trigger = 'schedule' and o.published_at is not null
        order by o.scheduled_for desc limit 1) r
      where r.published_at > now() - make_interval(secs => ${window})`;
    for (const l of lag) publishLag.set({ schedule_id: String(l.schedule_id), schedule: l.name }, l.lag);

    const schedules = await sql<{
      id: number; name: string; kind: string; cron: string | null; every: string | null; every_seconds: number | null; times: string[] | null;
      timezone: string; factor: number; since_s: number;
    }[]>`
      select s.id, s.name, s.kind, s.cron, s.every, s.every_seconds, s.times, s.timezone,
             ${hasAlerts ? sql`coalesce(s.alert_stale_factor, case when s.built_in then ${opts.staleFactor}::float8 else 0 end)` : sql`0::float8`} as factor,
             extract(epoch from now() - greatest(s.updated_at, (select max(r.finished_at) from wombat.runs r where r.schedule_id = s.id and r.state = 'completed')))::float8 as since_s
      from wombat.schedules s where s.status = 'active'`;
    const nowDate = new Date();
    for (const s of schedules) {
      const labels = { schedule_id: String(s.id), schedule: s.name };
      sinceSuccess.set(labels, Math.round(s.since_s));
      if (s.factor <= 0) continue;
      try {
        const interval = expectedIntervalMs(nextOccurrences({ trigger: triggerOf(s), timezone: s.timezone }, nowDate, 8));
        if (interval !== null) staleAfter.set(labels, (interval / 1000) * s.factor);
      } catch {
        // a definition no engine can read: it has no expected interval
      }
    }

    if (hasWorkers) {
      const workers = await sql<{ id: string; host: string | null; pid: number; queues: string[] | null; rss: number | null; in_hand: number }[]>`
        select id, host, pid, queues, rss_bytes as rss, runs_in_hand as in_hand from wombat.workers
        where stopped_at is null and last_beat_at > now() - make_interval(secs => heartbeat_interval_ms * 3 / 1000.0)`;
      const served = await sql<{ queue: string }[]>`select distinct unnest(queues) as queue from wombat.workers`;
      for (const q of served) workersLive.set({ queue: q.queue }, 0);
      for (const w of workers) {
        for (const q of w.queues ?? []) workersLive.inc({ queue: q });
        const labels = { worker: w.id, host: w.host ?? '', pid: String(w.pid) };
        if (w.rss !== null) workerRss.set(labels, Number(w.rss));
        workerRunsInHand.set(labels, w.in_hand);
      }
      workersLiveTotal.set(workers.length);
    }

    if (opts.databaseHealth) {
      for (const m of [dbGrowth, dbTableBytes, dbDeadRows, dbLiveRows, dbSinceVacuum, fsSize, fsFree]) m.reset();
      const h = await opts.databaseHealth();
      dbSize.set(h.size_bytes);
      if (h.growth_bytes_per_day !== null) dbGrowth.set(h.growth_bytes_per_day);
      dbConnections.set(h.connections.used);
      dbMaxConnections.set(h.connections.max);
      dbOldestTransaction.set(h.oldest_transaction_s ?? 0);
      for (const t of h.largest_tables) dbTableBytes.set({ table: t.table }, t.bytes);
      for (const t of h.hot_tables) {
        dbDeadRows.set({ table: t.table }, t.dead_rows);
        dbLiveRows.set({ table: t.table }, t.live_rows);
        if (t.last_vacuum) dbSinceVacuum.set({ table: t.table }, Math.max(0, Math.round((Date.now() - Date.parse(t.last_vacuum)) / 1000)));
      }
      for (const f of h.filesystems) {
        fsSize.set({ role: f.role }, f.size_bytes);
        fsFree.set({ role: f.role }, f.free_bytes);
      }
    }

    if (hasAlerts) {
      const [open, counters, pending] = await Promise.all([
        sql<{ kind: string; severity: string; n: number }[]>`select kind, severity, count(*)::int as n from wombat.alerts where state = 'open' group by 1, 2`,
        sql<{ name: string; label: string; value: number }[]>`select name, label, value from wombat.alert_counters`,
        sql<{ channel: string; n: number }[]>`select channel, count(*)::int as n from wombat.alert_deliveries where state in ('pending', 'sending') group by 1`,
      ]);
      for (const o of open) alertsOpen.set({ kind: o.kind, severity: o.severity }, o.n);
      for (const p of pending) deliveriesPending.set({ channel: p.channel }, p.n);
      for (const c of counters) {
        const key = `${c.name}:${c.label}`;
        if (c.name === 'raised') {
          const [kind = '', severity = ''] = c.label.split(':');
          feed(raised, key, { kind, severity }, Number(c.value));
        } else if (c.name === 'delivery_failures') feed(deliveryFailures, key, { channel: c.label }, Number(c.value));
        else if (c.name === 'delivered') feed(delivered, key, { channel: c.label }, Number(c.value));
      }
    }
  }

  return {
    registry,
    contentType: registry.contentType,
    render() {
      // Concurrent scrapes share one read: the histogram must not see a run twice.
      scraping ??= refresh()
        .then(() => registry.metrics())
        .finally(() => (scraping = undefined));
      return scraping;
    },
  };
}
