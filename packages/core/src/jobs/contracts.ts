import Type, { type Static, type TSchema } from 'typebox';
import Value from 'typebox/value';
import type { FieldIssue } from '../platform/errors.ts';
import { unstorableText } from '../platform/json-text.ts';
import { Compile, type Validator } from 'typebox/compile';

/**
 * Job contracts: the queues every service agrees on and the parameters each job
 * takes. The api validates requests with these schemas, the engine validates
 * schedule params with them, the worker validates what it dequeues.
 */
export const EXCHANGES = ['upbit', 'kis'] as const;
export type Exchange = (typeof EXCHANGES)[number];

export const TIMEFRAMES = ['1m', '3m', '5m', '10m', '15m', '30m', '1H', '4H', '1D', '1W', '1M'] as const;
export type Timeframe = (typeof TIMEFRAMES)[number];

export const STORAGES = ['parquet', 'postgres', 'both'] as const;
export type Storage = (typeof STORAGES)[number];

/**
 * Dead letters are runs, not a queue: a run whose last attempt failed (state
 * 'failed') stays in wombat.runs with its error until it is requeued or purged.
 */

/** NOTIFY channel the api uses to ask workers to abort a running job; payload is the run id. */
export const CANCEL_CHANNEL = 'wombat_run_cancel';

/** Longest canary sleep: ten minutes. */
export const CANARY_MAX_SLEEP_MS = 600_000;

// Spelled out (not mapped from the arrays) so the static types stay literal unions.
const exchange = Type.Union([Type.Literal('upbit'), Type.Literal('kis')], { description: 'exchange: upbit or kis' });
const timeframe = Type.Union(
  [
    Type.Literal('1m'),
    Type.Literal('3m'),
    Type.Literal('5m'),
    Type.Literal('10m'),
    Type.Literal('15m'),
    Type.Literal('30m'),
    Type.Literal('1H'),
    Type.Literal('4H'),
    Type.Literal('1D'),
    Type.Literal('1W'),
    Type.Literal('1M'),
  ],
  { description: `timeframe: ${TIMEFRAMES.join(', ')}` },
);
const storage = Type.Union([Type.Literal('parquet'), Type.Literal('postgres'), Type.Literal('both')], { description: 'storage: parquet, postgres or both' });
const symbol = Type.String({ minLength: 1, maxLength: 40, pattern: '^[A-Za-z0-9._-]+$', description: 'exchange symbol, e.g. KRW-BTC or 005930' });
const isoTime = Type.String({ format: 'date-time', description: 'ISO 8601 instant, e.g. 2026-01-01T00:00:00Z' });
const closed = { additionalProperties: false } as const;
/**
 * The logical period of a run: the span of time it collects for, [from, to). A schedule's
 * occurrence at t covers the time since its previous occurrence (from = that one, to = t), so a
 * backfilled occurrence collects what it would have collected at t, not what is there now.
 */
const logicalPeriod = Type.Optional(
  Type.Object(
    { from: isoTime, to: isoTime },
    { ...closed, description: 'logical period {from, to} (ISO instants, to exclusive) the run collects for; a backfill sets it per occurrence' },
  ),
);

/** Jobs whose params take a logical `period` ({from, to}): the ones a backfill can run for a past occurrence. */
export const PERIOD_JOBS = ['collect-symbols', 'collect-prices', 'fetch-candles', 'canary'] as const satisfies readonly string[];
export type PeriodJob = (typeof PERIOD_JOBS)[number];
export const takesPeriod = (job: string): job is PeriodJob => (PERIOD_JOBS as readonly string[]).includes(job);

export const jobParamSchemas = {
  'collect-symbols': Type.Object(
    { exchanges: Type.Optional(Type.Array(exchange, { minItems: 1, uniqueItems: true })), period: logicalPeriod },
    { ...closed, description: 'refresh the symbol lists of the exchanges (all when omitted); the lists are as of now whatever the period (exchanges publish no past listings)' },
  ),
  'collect-prices': Type.Object(
    {
      exchanges: Type.Optional(Type.Array(exchange, { minItems: 1, uniqueItems: true })),
      market: Type.Optional(Type.String({ minLength: 1, maxLength: 20, description: 'KIS market, e.g. KOSPI or KOSDAQ' })),
      symbols: Type.Optional(Type.Array(symbol, { minItems: 1, maxItems: 5000, uniqueItems: true })),
      timeframes: Type.Optional(Type.Array(timeframe, { minItems: 1, uniqueItems: true })),
      daysBack: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
      overwrite: Type.Optional(Type.Boolean()),
      period: logicalPeriod,
    },
    { ...closed, description: 'fan out one fetch-candles job per exchange x symbol x timeframe' },
  ),
  'fetch-candles': Type.Object(
    {
      exchange,
      symbol,
      timeframe,
      daysBack: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
      from: Type.Optional(isoTime),
      to: Type.Optional(isoTime),
      overwrite: Type.Optional(Type.Boolean()),
      storage: Type.Optional(storage),
      period: logicalPeriod,
    },
    {
      ...closed,
      description:
        'collect candles for one symbol and timeframe: days back, a range, or incrementally from the last stored candle; with a period, the range ends at its end (days back from there, else the period itself)',
    },
  ),
  canary: Type.Object(
    {
      sleep_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: CANARY_MAX_SLEEP_MS, description: `sleep this many ms first (0..${CANARY_MAX_SLEEP_MS}), honouring cancellation and the timeout` })),
      fail: Type.Optional(
        Type.Union([Type.Literal(true), Type.Literal('permanent')], {
          description: 'then fail: true (a retryable error, retried as the job allows) or "permanent" (no retries)',
        }),
      ),
      period: logicalPeriod,
    },
    { ...closed, description: 'completes at once and records scheduled-to-start latency; sleep_ms and fail steer it for timeout, retry, dead-letter and alert drills' },
  ),
  backtest: Type.Object(
    {
      strategy: Type.Union([Type.Literal('ma-crossover'), Type.Literal('volume-breakout'), Type.Literal('volume-zone-breakout')], {
        description: 'strategy: ma-crossover, volume-breakout or volume-zone-breakout',
      }),
      exchange,
      symbols: Type.Array(symbol, { minItems: 1, maxItems: 100, uniqueItems: true }),
      timeframe: Type.Optional(timeframe),
      from: isoTime,
      to: isoTime,
      initialCash: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
      feeRate: Type.Optional(Type.Number({ minimum: 0, maximum: 0.1 })),
      options: Type.Optional(Type.Record(Type.String(), Type.Number())),
    },
    { ...closed, description: 'run a strategy over candles already collected' },
  ),
  // ETL crawls: configured by the worker's environment; params narrow one run.
  'crawl-prices': Type.Object(
    {
      sources: Type.Optional(
        Type.Array(Type.String({ minLength: 1, maxLength: 100, description: 'source name from the PRICE_CRAWL_SOURCES file' }), { minItems: 1, maxItems: 500, uniqueItems: true }),
      ),
    },
    { ...closed, description: 'crawl the prices of watched products from the shop pages of PRICE_CRAWL_SOURCES (all sources when omitted)' },
  ),
  'collect-posts': Type.Object(
    {
      subreddits: Type.Optional(
        Type.Array(Type.String({ minLength: 2, maxLength: 21, pattern: '^[A-Za-z0-9_]+$', description: 'subreddit name without r/' }), { minItems: 1, maxItems: 100, uniqueItems: true }),
      ),
      horizonHours: Type.Optional(Type.Integer({ minimum: 1, maximum: 24 * 365, description: 'page back no further than posts this old' })),
      maxPages: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'listing pages per subreddit at most' })),
    },
    { ...closed, description: 'collect new posts of REDDIT_SUBREDDITS (or the ones given) incrementally' },
  ),
  'collection-report': Type.Object(
    {
      period: Type.Union([Type.Literal('week'), Type.Literal('month')], { description: 'the last whole ISO week (Monday to Sunday) or calendar month before the run' }),
      timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_+/-]+$', description: 'IANA time zone of the bounds of the period (default UTC)' })),
    },
    { ...closed, description: 'the weekly or monthly collection report, sent by e-mail (CSV and HTML attached), Slack and webhook like an alert' },
  ),
  'data-snapshot': Type.Object(
    { copy: Type.Optional(Type.Boolean({ description: 'copy every file instead of hard-linking it' })) },
    { ...closed, description: 'a dated snapshot of DATA_ROOT in SNAPSHOT_DIR: hard links of the Parquet files (copies where links are impossible), then the retention' },
  ),
  // Configured by the worker's environment (BACKUP_DIR, BACKUP_FORMAT, retention); nothing to narrow.
  'database-backup': Type.Object({}, { ...closed, description: 'back up the database into BACKUP_DIR (one file with its checksum), then apply retention' }),
} satisfies Record<string, TSchema>;

export type JobType = keyof typeof jobParamSchemas;
export type JobParams<J extends JobType> = Static<(typeof jobParamSchemas)[J]>;
export const JOB_TYPES = Object.keys(jobParamSchemas) as JobType[];

export function isJobType(value: unknown): value is JobType {
  return typeof value === 'string' && Object.hasOwn(jobParamSchemas, value);
}

export interface JobDefaults {
  timeoutSeconds: number;
  retryLimit: number;
  retryDelaySeconds: number;
  retryBackoff: boolean;
}

/** Per-job defaults; a schedule or a request may override them. */
export const jobDefaults: Record<JobType, JobDefaults> = {
  'collect-symbols': { timeoutSeconds: 600, retryLimit: 3, retryDelaySeconds: 30, retryBackoff: true },
  'collect-prices': { timeoutSeconds: 300, retryLimit: 3, retryDelaySeconds: 30, retryBackoff: true },
  'fetch-candles': { timeoutSeconds: 1800, retryLimit: 5, retryDelaySeconds: 10, retryBackoff: true },
  canary: { timeoutSeconds: 60, retryLimit: 0, retryDelaySeconds: 1, retryBackoff: false },
  backtest: { timeoutSeconds: 3600, retryLimit: 0, retryDelaySeconds: 10, retryBackoff: false },
  // Requests are retried inside a run; a failed source or page fails the run without a job retry (it would fail the same way).
  'crawl-prices': { timeoutSeconds: 1800, retryLimit: 0, retryDelaySeconds: 60, retryBackoff: false },
  // Idempotent: a retry only pages less.
  'collect-posts': { timeoutSeconds: 1800, retryLimit: 2, retryDelaySeconds: 120, retryBackoff: true },
  // Idempotent: a report already recorded for the period is not sent again.
  'collection-report': { timeoutSeconds: 600, retryLimit: 2, retryDelaySeconds: 60, retryBackoff: true },
  // A snapshot is rebuilt from scratch on a retry (the partial one is removed first).
  'data-snapshot': { timeoutSeconds: 3600, retryLimit: 1, retryDelaySeconds: 300, retryBackoff: false },
  // A backup that failed (disk full, server gone) is tried once more after a pause; another
  // failure is a dead letter, and the run_failed alert says so.
  'database-backup': { timeoutSeconds: 4 * 3600, retryLimit: 1, retryDelaySeconds: 300, retryBackoff: false },
};

/**
 * Liveness of a running attempt. A worker touches its jobs' pg-boss heartbeat every
 * JOB_HEARTBEAT_REFRESH_SECONDS and its own row in wombat.workers every few seconds. Wombat's
 * reconciler (in the engine) ends an attempt whose worker or job heartbeat is older than
 * JOB_HEARTBEAT_SECONDS (both scaled by JOB_HEARTBEAT_S, which engines and workers read),
 * measured from the later of that heartbeat and the database's last return
 * from an outage: nobody can beat while PostgreSQL is unreachable, so staleness that overlaps an
 * outage says nothing about the worker. A worker that really died is caught in about 15-25 s.
 *
 * pg-boss's own monitor cannot tell an outage from a death, so the queues give it a heartbeat
 * limit past any outage Wombat rides out: bossHeartbeatSeconds(OUTAGE_GRACE_S). It is the
 * backstop for an installation with no engine running.
 */
export const JOB_HEARTBEAT_SECONDS = 15;
export const JOB_HEARTBEAT_REFRESH_SECONDS = 5;

/** How often a worker touches its jobs' heartbeat for a heartbeat limit (JOB_HEARTBEAT_S): three times within it. */
export function jobHeartbeatRefreshSeconds(jobHeartbeatSeconds: number): number {
  return jobHeartbeatSeconds / 3;
}
/** Default OUTAGE_GRACE_S: a database outage this long leaves every live attempt running. */
export const OUTAGE_GRACE_DEFAULT_SECONDS = 60;

/**
 * pg-boss's job heartbeat limit for an outage grace: a job last touched just before the outage
 * began is touched again within two refresh intervals of the database's return (the first touch
 * may meet a dead pooled connection), plus a margin for a busy event loop.
 */
export function bossHeartbeatSeconds(outageGraceSeconds: number): number {
  return outageGraceSeconds + 3 * JOB_HEARTBEAT_REFRESH_SECONDS + 15;
}

/**
 * Compiled checkers, made on first use: an engine validates every schedule it
 * loads, and the interpreted Value.Check took 25x the time and 5x the garbage.
 */
const validators = new Map<JobType, Validator>();
function validator(job: JobType): Validator {
  let v = validators.get(job);
  if (!v) {
    v = Compile(jobParamSchemas[job] as TSchema);
    validators.set(job, v);
  }
  return v;
}

/** On failure, `issues` name for each problem the parameter it concerns (null: several, or all of them). */
export type ParamsCheck<T> = { ok: true; value: T } | { ok: false; problems: string[]; issues: FieldIssue[] };

const refused = (issues: FieldIssue[]) => ({ ok: false as const, problems: issues.map((i) => i.message), issues });
const unplaced = (problems: string[]) => refused(problems.map((message) => ({ field: null, message })));

/** Validates `params` for `job`; problems name the offending field and what it must be. */
export function checkJobParams<J extends JobType>(job: J, params: unknown): ParamsCheck<JobParams<J>>;
export function checkJobParams(job: string, params: unknown): ParamsCheck<unknown>;
export function checkJobParams(job: string, params: unknown): ParamsCheck<unknown> {
  if (!isJobType(job)) return unplaced([`job "${job}" is unknown; known jobs: ${JOB_TYPES.join(', ')}`]);
  const schema = jobParamSchemas[job];
  const value = params ?? {};
  // Keys too (a record's keys are not checked by its schema): Postgres cannot store NUL or lone surrogates.
  const text = unstorableText(value, 'params');
  if (text) return unplaced([text]);
  if (validator(job).Check(value)) {
    const extra = crossFieldProblems(job, value as Record<string, unknown>);
    return extra.length > 0 ? unplaced(extra) : { ok: true, value };
  }
  return refused(describeIssues(schema, value, 'params'));
}

function crossFieldProblems(job: JobType, p: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const from = typeof p.from === 'string' ? Date.parse(p.from) : undefined;
  const to = typeof p.to === 'string' ? Date.parse(p.to) : undefined;
  if (from !== undefined && to !== undefined && from >= to) problems.push('params.from must be earlier than params.to');
  if (job === 'fetch-candles' && p.daysBack !== undefined && p.from !== undefined) {
    problems.push('params: give either daysBack or from/to, not both');
  }
  const period = p.period as { from?: unknown; to?: unknown } | undefined;
  if (period && typeof period === 'object' && typeof period.from === 'string' && typeof period.to === 'string' && Date.parse(period.from) >= Date.parse(period.to)) {
    problems.push('params.period.from must be earlier than params.period.to');
  }
  if (job === 'fetch-candles' && period !== undefined && (p.from !== undefined || p.to !== undefined)) {
    problems.push('params: give either period or from/to, not both');
  }
  return problems;
}

/** Turns TypeBox errors into one readable line per problem, deepest first. */
export function describeErrors(schema: TSchema, value: unknown, root: string): string[] {
  return describeIssues(schema, value, root).map((i) => i.message);
}

/** describeErrors with, for each line, the top-level field of `value` it concerns. */
function describeIssues(schema: TSchema, value: unknown, root: string): FieldIssue[] {
  const seen = new Set<string>();
  const out: FieldIssue[] = [];
  for (const e of Value.Errors(schema, value)) {
    const where = root + e.instancePath.replaceAll('/', '.');
    let message = e.message;
    if (e.keyword === 'additionalProperties') {
      const props = (e.params as { additionalProperties?: string[] }).additionalProperties;
      message = `has unknown field(s) ${props?.join(', ') ?? ''}`.trim();
    } else if (e.keyword === 'boolean' && e.instancePath) {
      // An unknown field shows up twice (as `false` schema and as additionalProperties): say it once.
      const parts = e.instancePath.split('/');
      const parent = root + parts.slice(0, -1).join('.');
      out.push({ field: parts[1] ?? null, message: `${parent} has unknown field ${parts.at(-1)}` });
      seen.add(parent);
      continue;
    } else if (e.keyword === 'const' || e.keyword === 'anyOf') {
      const s = schemaAt(schema, e.instancePath);
      message = s?.description ? `must be ${s.description}` : 'has a value that is not allowed';
    }
    const line = `${where} ${message}`;
    if (!seen.has(where)) {
      seen.add(where);
      out.push({ field: e.instancePath.split('/')[1] || null, message: line });
    }
  }
  return out.length > 0 ? out : [{ field: null, message: `${root} is invalid` }];
}

function schemaAt(schema: TSchema, pointer: string): (TSchema & { description?: string }) | undefined {
  let s: unknown = schema;
  for (const part of pointer.split('/').filter(Boolean)) {
    const node = s as { properties?: Record<string, unknown>; items?: unknown };
    s = node.properties?.[part] ?? (/^\d+$/.test(part) ? node.items : undefined);
    if (s === undefined) return undefined;
  }
  return s as TSchema & { description?: string };
}
