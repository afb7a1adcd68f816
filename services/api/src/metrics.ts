import { ACTIVE_RUN_STATES, BOSS_SCHEMA, JOB_TYPES, WORKER_ALIVE_SQL, type Sql } from '@wombat/core';

/** Upper bounds of the run duration histogram, in seconds. */
export const DURATION_BUCKETS_SECONDS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600];
/** Failure rate, duration histogram and publish lag look at runs finished (or published) within this window. */
export const METRICS_WINDOW_SECONDS = 3600;

type Labels = Record<string, string>;
interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter' | 'histogram';
  samples: { suffix?: string; labels?: Labels; value: number }[];
}

const escapeLabel = (v: string) => v.replaceAll('\\', '\\\\').replaceAll('\n', '\\n').replaceAll('"', '\\"');

/** Prometheus text exposition format 0.0.4. */
export function renderMetrics(families: Family[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels ?? {});
      const text = labels.length === 0 ? '' : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
      const value = Number.isFinite(s.value) ? String(s.value) : s.value > 0 ? '+Inf' : s.value < 0 ? '-Inf' : 'NaN';
      lines.push(`${f.name}${s.suffix ?? ''}${text} ${value}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

async function tableExists(sql: Sql, name: string): Promise<boolean> {
  const [row] = await sql<{ exists: boolean }[]>`select to_regclass(${name}) is not null as exists`;
  return row?.exists === true;
}

/** Reads every figure from Postgres at scrape time: the api keeps no counters of its own. */
export async function collectMetrics(sql: Sql): Promise<Family[]> {
  const window = METRICS_WINDOW_SECONDS;
  const [queueRows, runRows, finishedRows, durationRows, deadRow, hasEngines, hasSchedules] = await Promise.all([
    sql<{ name: string; state: string; n: number }[]>`
      select name, state::text as state, count(*)::int as n from ${sql(BOSS_SCHEMA)}.job
      where state in ('created', 'retry', 'active') group by name, state`,
    sql<{ job: string; n: number }[]>`select job, count(*)::int as n from wombat.runs where state = 'running' group by job`,
    sql<{ job: string; state: string; n: number }[]>`
      select job, state, count(*)::int as n from wombat.runs
      where state in ('completed', 'failed', 'cancelled') and finished_at > now() - make_interval(secs => ${window})
      group by job, state`,
    sql<{ job: string; counts: number[]; sum: number; n: number }[]>`
      select job,
        array[${sql.unsafe(DURATION_BUCKETS_SECONDS.map((b) => `count(*) filter (where d <= ${b})::int`).join(', '))}] as counts,
        coalesce(sum(d), 0)::float8 as sum, count(*)::int as n
      from (select job, extract(epoch from finished_at - started_at)::float8 as d from wombat.runs
            where finished_at > now() - make_interval(secs => ${window}) and started_at is not null
              and state in ('completed', 'failed', 'cancelled')) r
      group by job`,
    sql<{ n: number }[]>`select count(*)::int as n from wombat.runs where state = 'failed' and requeued_as is null`,
    tableExists(sql, 'wombat.engines'),
    tableExists(sql, 'wombat.schedules'),
  ]);

  const depth = new Map<string, number>(JOB_TYPES.map((j) => [j, 0]));
  const active = new Map<string, number>(JOB_TYPES.map((j) => [j, 0]));
  for (const r of queueRows) {
    if (r.state === 'active') active.set(r.name, (active.get(r.name) ?? 0) + r.n);
    else depth.set(r.name, (depth.get(r.name) ?? 0) + r.n);
  }
  const running = new Map<string, number>(JOB_TYPES.map((j) => [j, 0]));
  for (const r of runRows) running.set(r.job, r.n);

  const finished = new Map<string, { completed: number; failed: number; cancelled: number }>();
  for (const r of finishedRows) {
    const f = finished.get(r.job) ?? { completed: 0, failed: 0, cancelled: 0 };
    f[r.state as 'completed' | 'failed' | 'cancelled'] = r.n;
    finished.set(r.job, f);
  }

  const families: Family[] = [
    { name: 'wombat_queue_depth', help: 'jobs waiting in each pg-boss queue (created or retry)', type: 'gauge', samples: [...depth].map(([q, v]) => ({ labels: { queue: q }, value: v })) },
    { name: 'wombat_queue_active_jobs', help: 'jobs a worker has fetched in each pg-boss queue', type: 'gauge', samples: [...active].map(([q, v]) => ({ labels: { queue: q }, value: v })) },
    { name: 'wombat_runs_running', help: 'runs in state running, by job', type: 'gauge', samples: [...running].map(([j, v]) => ({ labels: { job: j }, value: v })) },
    {
      name: 'wombat_runs_finished_window',
      help: `runs finished in the last ${window} s, by job and state`,
      type: 'gauge',
      samples: [...finished].flatMap(([job, f]) => Object.entries(f).map(([state, v]) => ({ labels: { job, state }, value: v }))),
    },
    {
      name: 'wombat_run_failure_ratio',
      help: `failed / (completed + failed) among runs finished in the last ${window} s, by job`,
      type: 'gauge',
      samples: [...finished].filter(([, f]) => f.completed + f.failed > 0).map(([job, f]) => ({ labels: { job }, value: f.failed / (f.completed + f.failed) })),
    },
    {
      name: 'wombat_run_duration_seconds',
      help: `duration (finished_at - started_at) of runs finished in the last ${window} s`,
      type: 'histogram',
      samples: durationRows.flatMap((r) => [
        ...DURATION_BUCKETS_SECONDS.map((le, i) => ({ suffix: '_bucket', labels: { job: r.job, le: String(le) }, value: r.counts[i] ?? 0 })),
        { suffix: '_bucket', labels: { job: r.job, le: '+Inf' }, value: r.n },
        { suffix: '_sum', labels: { job: r.job }, value: r.sum },
        { suffix: '_count', labels: { job: r.job }, value: r.n },
      ]),
    },
    { name: 'wombat_dead_letters', help: 'failed runs not yet requeued or purged', type: 'gauge', samples: [{ value: deadRow[0]?.n ?? 0 }] },
  ];

  // Unfinished runs by state (held and retrying included) and the worker registry (migration 0005).
  const activeRows = await sql<{ job: string; state: string; n: number }[]>`
    select job, state, count(*)::int as n from wombat.runs where state in ${sql([...ACTIVE_RUN_STATES])} group by job, state`;
  const activeByKey = new Map(activeRows.map((r) => [`${r.job}\0${r.state}`, r.n]));
  families.push({
    name: 'wombat_runs_active',
    help: 'unfinished runs by job and state (held, queued, running, retrying)',
    type: 'gauge',
    samples: JOB_TYPES.flatMap((job) => ACTIVE_RUN_STATES.map((state) => ({ labels: { job, state }, value: activeByKey.get(`${job}\0${state}`) ?? 0 }))),
  });
  if (await tableExists(sql, 'wombat.workers')) {
    const workers = await sql<{ id: string; host: string; pid: number; rss: number; runs: number }[]>`
      select id, host, pid, rss_bytes::float8 as rss, runs_in_hand as runs from wombat.workers where ${sql.unsafe(WORKER_ALIVE_SQL)}`;
    families.push(
      { name: 'wombat_workers_live', help: 'worker processes whose heartbeat is fresh (0: no worker runs jobs)', type: 'gauge', samples: [{ value: workers.length }] },
      {
        name: 'wombat_worker_rss_bytes',
        help: 'resident memory of each live worker at its last heartbeat',
        type: 'gauge',
        samples: workers.map((w) => ({ labels: { worker: w.id, host: w.host, pid: String(w.pid) }, value: w.rss })),
      },
      {
        name: 'wombat_worker_runs_in_hand',
        help: 'jobs each live worker was running at its last heartbeat',
        type: 'gauge',
        samples: workers.map((w) => ({ labels: { worker: w.id, host: w.host, pid: String(w.pid) }, value: w.runs })),
      },
    );
  }
  if (hasEngines) {
    const engines = await sql<{ id: string; age: number; enabled: boolean }[]>`
      select id, extract(epoch from now() - last_beat_at)::float8 as age, enabled from wombat.engines where stopped_at is null`;
    families.push({
      name: 'wombat_engine_heartbeat_age_seconds',
      help: 'seconds since each running scheduler-engine last wrote its heartbeat',
      type: 'gauge',
      samples: engines.map((e) => ({ labels: { engine: e.id, enabled: String(e.enabled) }, value: Math.round(e.age * 1000) / 1000 })),
    });
  }
  if (hasSchedules) {
    const lag = await sql<{ schedule_id: number; name: string; lag: number }[]>`
      select distinct on (r.schedule_id) r.schedule_id, s.name, extract(epoch from r.published_at - r.scheduled_for)::float8 as lag
      from wombat.runs r join wombat.schedules s on s.id = r.schedule_id
      where r.trigger = 'schedule' and r.published_at > now() - make_interval(secs => ${window})
      order by r.schedule_id, r.scheduled_for desc`;
    families.push({
      name: 'wombat_schedule_publish_lag_seconds',
      help: 'published_at - scheduled_for of each schedule\'s latest published occurrence',
      type: 'gauge',
      samples: lag.map((l) => ({ labels: { schedule_id: String(l.schedule_id), schedule: l.name }, value: l.lag })),
    });
  }
  return families;
}
