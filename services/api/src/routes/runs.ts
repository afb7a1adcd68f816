import Type from 'typebox';
import { jobFilterName } from '@wombat/core/jobs';
import { AppError } from '@wombat/core/platform';
import { ACTIVE_RUN_STATES, cancelRuns, cancelRunsInput, listSupersededAttempts } from '@wombat/core/runs';
import type { App, AppDeps } from '../deps.ts';
import { notFound } from '../http-errors.ts';
import { apiDb, getRun, listRuns } from '../runs-store.ts';
import { ErrorSchema, RunSchema, RunStateSchema, RunTriggerSchema, UuidSchema, runView } from '../views.ts';

export const PageQuery = {
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 50, description: 'page size' }),
  offset: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0, description: 'rows to skip (a deep offset reads every row it skips: prefer starting_after)' }),
  starting_after: Type.Optional(
    Type.String({ format: 'uuid', description: "the next page: the previous page's next_starting_after (the id of its last run); every page then costs what the first does" }),
  ),
};

/** The paging fields of a list's answer. */
export const PageFields = {
  total: Type.Integer(),
  limit: Type.Integer(),
  offset: Type.Integer(),
  has_more: Type.Boolean({ description: 'more runs follow this page' }),
  next_starting_after: Type.Union([Type.String(), Type.Null()], { description: 'pass as starting_after for the next page; null on the last page' }),
};

/** Keyset paging and an offset do not mix: the cursor already says where the page starts. */
export function pageOf(q: { limit: number; offset: number; starting_after?: string | undefined }): { limit: number; offset: number; startingAfter: string | undefined } {
  if (q.starting_after !== undefined && q.offset > 0) throw new AppError('invalid_input', 'give either offset or starting_after, not both', { issues: [{ field: 'offset', message: 'leave it out with starting_after' }] });
  return { limit: q.limit, offset: q.offset, startingAfter: q.starting_after };
}

/** The answer's paging fields from a page. */
export function pageFields(q: { limit: number; offset: number }, p: { total: number; hasMore: boolean; nextStartingAfter: string | null }) {
  return { total: p.total, limit: q.limit, offset: q.offset, has_more: p.hasMore, next_starting_after: p.nextStartingAfter };
}
export const JobNameQuery = Type.String({ minLength: 1, maxLength: 100, pattern: '^[a-z][a-z0-9-]*$', description: 'job type, e.g. backtest, or its name in the older setup, e.g. price-crawl' });
export const TimeQuery = (what: string) => Type.String({ format: 'date-time', description: `${what} (ISO 8601 instant)` });

const RunsQuery = Type.Object(
  {
    schedule: Type.Optional(Type.Integer({ minimum: 1, maximum: 9_007_199_254_740_991, description: 'schedule id' })),
    job: Type.Optional(JobNameQuery),
    state: Type.Optional(RunStateSchema),
    trigger: Type.Optional(RunTriggerSchema),
    since: Type.Optional(TimeQuery('runs created at or after')),
    until: Type.Optional(TimeQuery('runs created before')),
    ...PageQuery,
  },
  { additionalProperties: false },
);

const CancelRunsBody = Type.Object(
  {
    job: Type.String({ minLength: 1, maxLength: 100, description: 'job type whose runs to cancel, e.g. canary, or its name in the older setup' }),
    state: Type.Optional(
      Type.Union([Type.String({ maxLength: 20 }), Type.Array(Type.String({ maxLength: 20 }), { minItems: 1, maxItems: 4 })], {
        description: `runs in this state, or these states: ${ACTIVE_RUN_STATES.join(', ')} (default queued)`,
      }),
    ),
    older_than: Type.Optional(Type.String({ maxLength: 20, description: 'only runs created longer ago than this age: 90s, 30m, 1h, 2d, 1w' })),
  },
  { additionalProperties: false, description: 'empties a queue: every unfinished run of `job` in `state`, created before `older_than` ago' },
);

/** One run, with the writes of its superseded attempts (refused, kept apart from its outcome). */
const RunDetailSchema = Type.Intersect([
  RunSchema,
  Type.Object({
    superseded_attempts: Type.Array(
      Type.Object({
        attempt: Type.Integer(),
        state: Type.String({ description: 'what the superseded attempt tried to record: running, retrying, completed or failed' }),
        worker_id: Type.Union([Type.String(), Type.Null()]),
        error: Type.Unknown(),
        recorded_at: Type.String({ format: 'date-time' }),
      }),
      { description: 'attempts that lost their claim (ended by the engine or pg-boss) and wrote afterwards; never the run\'s outcome' },
    ),
  }),
]);

export function runRoutes(app: App, deps: AppDeps): void {
  const db = apiDb(deps.db);

  app.get(
    '/api/runs',
    {
      schema: {
        summary: 'run history, newest first: filter by schedule, job, state, trigger and creation time',
        tags: ['runs'],
        querystring: RunsQuery,
        response: { 200: Type.Object({ runs: Type.Array(RunSchema), ...PageFields }), 400: ErrorSchema },
      },
    },
    async (request) => {
      const q = request.query;
      const p = await listRuns(db, {
        scheduleId: q.schedule,
        job: jobFilterName(q.job),
        state: q.state,
        trigger: q.trigger,
        since: q.since === undefined ? undefined : new Date(q.since),
        until: q.until === undefined ? undefined : new Date(q.until),
        ...pageOf(q),
      });
      return { runs: p.runs.map(runView), ...pageFields(q, p) };
    },
  );

  app.post(
    '/api/runs/cancel',
    {
      schema: {
        summary: 'cancel every queued (or held, running, retrying) run of a job type at once, in one transaction with their pg-boss jobs; admin',
        tags: ['runs'],
        body: CancelRunsBody,
        response: {
          200: Type.Object({
            cancelled: Type.Integer({ description: 'how many runs were cancelled' }),
            job: Type.String(),
            states: Type.Array(Type.String()),
            older_than: Type.Union([Type.String(), Type.Null()]),
          }),
          400: ErrorSchema,
          401: ErrorSchema,
          403: ErrorSchema,
        },
      },
    },
    async (request) => {
      const b = request.body;
      const input = cancelRunsInput({ job: b.job, states: b.state === undefined ? undefined : [b.state].flat(), olderThan: b.older_than });
      const { cancelled } = await cancelRuns(deps.db, deps.boss, input);
      request.log.info({ job: input.job, states: input.states, olderThanSeconds: input.olderThanSeconds, cancelled }, 'runs cancelled');
      return { cancelled, job: input.job, states: input.states, older_than: b.older_than ?? null };
    },
  );

  app.get(
    '/api/runs/:id',
    {
      schema: {
        summary: 'one run with its parameters, result or error (failed-run inspection)',
        tags: ['runs'],
        params: Type.Object({ id: UuidSchema }, { additionalProperties: false }),
        response: { 200: RunDetailSchema, 400: ErrorSchema, 404: ErrorSchema },
      },
    },
    async (request) => {
      const run = await getRun(db, request.params.id);
      if (!run) throw notFound('run', request.params.id);
      const superseded = await listSupersededAttempts(deps.db, run.id);
      return {
        ...runView(run),
        superseded_attempts: superseded.map((a) => ({ attempt: a.attempt, state: a.state, worker_id: a.workerId, error: a.error ?? null, recorded_at: a.recordedAt.toISOString() })),
      };
    },
  );
}
