import { AppError, type FieldIssue, ValidationError } from '@wombat/core/platform';
import { checkJobParams, jobParamSchemas, type JobType } from '@wombat/core/jobs';
import { cancelRun, requeueRun } from '@wombat/core/runs';
import Type from 'typebox';
import type { FastifyReply } from 'fastify';
import type { App, AppDeps } from '../deps.ts';
import { isLegacyBacktestBody, legacyError, legacyStatus, mapLegacyBacktest } from '../legacy-backtest.ts';
import { errorBody, notFound } from '../http-errors.ts';
import { apiDb, childTally, getRun } from '../runs-store.ts';
import type { Submitter } from '../submitter.ts';
import { AcceptedSchema, ErrorSchema, JobNameSchema, LegacyTaskStatusSchema, NoBodySchema, TaskStatusSchema, UuidSchema, jobTypeOf, taskView } from '../views.ts';

const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema };
const IdParams = Type.Object({ id: UuidSchema }, { additionalProperties: false });
const SubmitQuery = Type.Object(
  {
    timeout_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, description: 'overrides the job type\'s timeout' })),
    max_retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 20, description: 'overrides the job type\'s retry limit' })),
  },
  { additionalProperties: false },
);
const ParamsBody = Type.Object({}, {
  additionalProperties: true,
  description: `the job's parameters (JSON object); see the job schemas: ${Object.keys(jobParamSchemas).join(', ')}. {"params": {...}} is accepted too`,
});

/**
 * The body is the job's parameters. Older callers wrapped them as {"params": {...}};
 * that shape is unwrapped only when it cannot be a parameter object of its own.
 */
export function taskParams(job: JobType, body: unknown): unknown {
  if (body === undefined || body === null) return {};
  const b = body as Record<string, unknown>;
  const keys = Object.keys(b);
  const schema = jobParamSchemas[job] as { properties?: Record<string, unknown> };
  if (keys.length === 1 && keys[0] === 'params' && !Object.hasOwn(schema.properties ?? {}, 'params')) return b.params;
  return body;
}

export function taskRoutes(app: App, deps: AppDeps, submitter: Submitter): void {
  const db = apiDb(deps.db);

  async function submit(job: JobType, body: unknown, query: { timeout_seconds?: number | undefined; max_retries?: number | undefined }) {
    const check = checkJobParams(job, taskParams(job, body));
    // The body is the parameters: a problem names the parameter as its field.
    if (!check.ok) throw new ValidationError(check.issues);
    const id = await submitter.submit({
      job,
      params: check.value as object,
      trigger: 'task',
      ...(query.timeout_seconds !== undefined ? { timeoutSeconds: query.timeout_seconds } : {}),
      ...(query.max_retries !== undefined ? { retryLimit: query.max_retries } : {}),
    });
    return { task_id: id, status: 'queued' as const, created_at: new Date().toISOString() };
  }

  const MAX_BATCH = 1000;
  async function submitBatch(job: JobType, tasks: unknown[], query: { timeout_seconds?: number | undefined; max_retries?: number | undefined }) {
    const issues: FieldIssue[] = [];
    const params: object[] = [];
    for (const [i, body] of tasks.entries()) {
      const check = checkJobParams(job, taskParams(job, body));
      if (check.ok) params.push(check.value as object);
      // At most the first few bad tasks are named: a thousand copies of one mistake say nothing more.
      else if (issues.length < 20) issues.push(...check.issues.map((x) => ({ field: `tasks[${i}]${x.field ? `.${x.field}` : ''}`, message: `tasks[${i}]: ${x.message}` })));
      else break;
    }
    if (issues.length > 0) throw new ValidationError(issues.slice(0, 20));
    const ids = await submitter.submitAll(
      params.map((p) => ({
        job,
        params: p,
        trigger: 'task' as const,
        ...(query.timeout_seconds !== undefined ? { timeoutSeconds: query.timeout_seconds } : {}),
        ...(query.max_retries !== undefined ? { retryLimit: query.max_retries } : {}),
      })),
    );
    const createdAt = new Date().toISOString();
    return { count: ids.length, status: 'queued' as const, created_at: createdAt, tasks: ids.map((id) => ({ task_id: id })) };
  }

  async function status(id: string) {
    const run = await getRun(db, id);
    if (!run) throw notFound('task', id);
    return taskView(run, deps.taskResultTtlDays, await childTally(db, id));
  }

  app.post(
    '/api/tasks/:type',
    {
      schema: {
        summary: 'submit an async task; answers 202 with its id at once',
        tags: ['tasks'],
        params: Type.Object({ type: JobNameSchema }, { additionalProperties: false }),
        querystring: SubmitQuery,
        body: Type.Optional(ParamsBody),
        response: { 202: AcceptedSchema, ...errors },
      },
    },
    async (request, reply) => {
      const accepted = await submit(jobTypeOf(request.params.type, 'type'), request.body, request.query);
      return reply.status(202).header('location', `/api/tasks/${accepted.task_id}`).send(accepted);
    },
  );

  app.post(
    '/api/tasks/:type/batch',
    {
      schema: {
        summary: `submit up to ${MAX_BATCH} tasks of one type in one transaction (all or none); each is a run with its own id`,
        tags: ['tasks'],
        params: Type.Object({ type: JobNameSchema }, { additionalProperties: false }),
        querystring: SubmitQuery,
        body: Type.Object(
          { tasks: Type.Array(ParamsBody, { minItems: 1, maxItems: MAX_BATCH, description: "each task's parameters, as the body of POST /api/tasks/{type}" }) },
          { additionalProperties: false },
        ),
        response: {
          202: Type.Object({
            count: Type.Integer(),
            status: Type.Literal('queued'),
            created_at: Type.String({ format: 'date-time' }),
            tasks: Type.Array(Type.Object({ task_id: Type.String({ format: 'uuid' }) })),
          }),
          ...errors,
        },
      },
    },
    async (request, reply) => reply.status(202).send(await submitBatch(jobTypeOf(request.params.type, 'type'), request.body.tasks, request.query)),
  );

  app.post(
    '/api/backtests/run-async',
    {
      schema: {
        summary: 'submit a backtest (alias of POST /api/tasks/backtest); also takes the replaced system\'s body: strategy (volume_zone_breakout, ma_crossover, volume_breakout), symbols or symbol (BTC_KRW), start_date, end_date (UTC days, inclusive), strategy parameters',
        tags: ['tasks'],
        querystring: SubmitQuery,
        body: ParamsBody,
        response: { 202: AcceptedSchema, ...errors },
      },
    },
    async (request, reply) => {
      let body: unknown = request.body;
      if (isLegacyBacktestBody(body)) {
        const mapped = mapLegacyBacktest(body);
        if (!mapped.ok) throw new AppError('invalid_input', mapped.problems.join('; '), { details: mapped.problems });
        body = mapped.params;
      }
      const accepted = await submit('backtest', body, request.query);
      return reply.status(202).header('location', `/api/tasks/${accepted.task_id}`).send(accepted);
    },
  );

  app.get(
    '/api/tasks/:id',
    { schema: { summary: 'status, progress, result or error of a task', tags: ['tasks'], params: IdParams, response: { 200: TaskStatusSchema, ...errors } } },
    async (request) => status(request.params.id),
  );
  app.get(
    '/api/backtests/status/:id',
    {
      schema: {
        summary: 'status of a task in the replaced system\'s shape: status queued, running, completed or failed; progress; result; error as a message (GET /api/tasks/{id} has the rest)',
        tags: ['tasks'],
        params: IdParams,
        response: { 200: LegacyTaskStatusSchema, ...errors },
      },
    },
    async (request) => {
      const view = await status(request.params.id);
      return { ...view, status: legacyStatus(view.status), error: legacyError(view.status, view.error), state: view.status, error_detail: view.error };
    },
  );

  const RetryAnswer = Type.Intersect([AcceptedSchema, Type.Object({ retry_of: Type.String() })]);
  const retry = async (request: { params: { id: string } }, reply: FastifyReply) => {
    const newId = await requeueRun(db, deps.boss, request.params.id, { trigger: 'task', notFoundCode: 'task_not_found' });
    return reply
      .status(202)
      .header('location', `/api/tasks/${newId}`)
      .send({ task_id: newId, status: 'queued' as const, created_at: new Date().toISOString(), retry_of: request.params.id });
  };
  app.post(
    '/api/tasks/:id/retry',
    {
      schema: {
        summary: 'run a finished task again as a new task with the same parameters',
        tags: ['tasks'],
        params: IdParams,
        body: NoBodySchema,
        response: { 202: RetryAnswer, ...errors },
      },
    },
    retry,
  );
  app.post(
    '/api/backtests/retry/:id',
    {
      schema: {
        summary: 'run a finished backtest again (alias of POST /api/tasks/{id}/retry)',
        tags: ['tasks'],
        params: IdParams,
        body: NoBodySchema,
        response: { 202: RetryAnswer, ...errors },
      },
    },
    retry,
  );

  app.delete(
    '/api/tasks/:id',
    {
      schema: {
        summary: 'cancel a queued or running task',
        tags: ['tasks'],
        params: IdParams,
        body: NoBodySchema,
        response: {
          200: Type.Object({ task_id: Type.String(), status: Type.Literal('cancelled'), previous_status: Type.String() }),
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      const outcome = await cancelRun(db, deps.boss, id);
      if (!outcome) throw notFound('task', id);
      if (!outcome.ok) {
        return reply.status(409).send(errorBody('task_finished', `task ${id} already ended as ${outcome.state}; retry it with POST /api/tasks/${id}/retry`));
      }
      return { task_id: id, status: 'cancelled' as const, previous_status: outcome.previous };
    },
  );
}
