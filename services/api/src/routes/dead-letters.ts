import { AppError } from '@wombat/core/platform';
import { jobFilterName } from '@wombat/core/jobs';
import { purgeDeadLetters, requeueRun } from '@wombat/core/runs';
import Type from 'typebox';
import type { App, AppDeps } from '../deps.ts';
import { apiDb, deadLetterIds, listDeadLetters } from '../runs-store.ts';
import { ErrorSchema, NoBodySchema, RunSchema, UuidSchema, runView } from '../views.ts';
import { JobNameQuery, PageFields, PageQuery, pageFields, pageOf, TimeQuery } from './runs.ts';

/** Most dead letters one request requeues; call again for more. */
export const MAX_REQUEUE_BATCH = 1000;

const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema };
const Requeued = Type.Object({ id: Type.String({ description: 'the dead letter' }), task_id: Type.String({ description: 'the new run' }) });

const RequeueBody = Type.Object(
  {
    ids: Type.Optional(Type.Array(UuidSchema, { minItems: 1, maxItems: MAX_REQUEUE_BATCH, uniqueItems: true, description: 'requeue these dead letters' })),
    all: Type.Optional(Type.Literal(true, { description: 'requeue every dead letter (of `job` when given), oldest first' })),
    job: Type.Optional(JobNameQuery),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_REQUEUE_BATCH, description: `at most this many (default and maximum ${MAX_REQUEUE_BATCH})` })),
  },
  { additionalProperties: false, description: 'give `ids`, or `all: true`, or `job` (every dead letter of that job)' },
);

const PurgeBody = Type.Object(
  {
    older_than_hours: Type.Integer({ minimum: 0, maximum: 87_600, description: 'delete dead letters that failed more than this many hours ago' }),
    job: Type.Optional(JobNameQuery),
  },
  { additionalProperties: false },
);

export function deadLetterRoutes(app: App, deps: AppDeps): void {
  const db = apiDb(deps.db);

  app.get(
    '/api/dead-letters',
    {
      schema: {
        summary: 'failed runs (final attempt failed) not yet requeued, newest first, with their errors',
        tags: ['dead letters'],
        querystring: Type.Object(
          { job: Type.Optional(JobNameQuery), since: Type.Optional(TimeQuery('failed at or after')), until: Type.Optional(TimeQuery('failed before')), ...PageQuery },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ dead_letters: Type.Array(RunSchema), ...PageFields }), 400: ErrorSchema },
      },
    },
    async (request) => {
      const q = request.query;
      const p = await listDeadLetters(db, {
        job: jobFilterName(q.job),
        since: q.since === undefined ? undefined : new Date(q.since),
        until: q.until === undefined ? undefined : new Date(q.until),
        ...pageOf(q),
      });
      return { dead_letters: p.runs.map(runView), ...pageFields(q, p) };
    },
  );

  app.post(
    '/api/dead-letters/:id/requeue',
    {
      schema: {
        summary: 'run a dead letter again as a new run with the same job and parameters',
        tags: ['dead letters'],
        params: Type.Object({ id: UuidSchema }, { additionalProperties: false }),
        body: NoBodySchema,
        response: { 202: Requeued, ...errors },
      },
    },
    async (request, reply) => {
      const taskId = await requeueRun(db, deps.boss, request.params.id, { trigger: 'manual', notFoundCode: 'dead_letter_not_found', onlyDeadLetter: true });
      return reply.status(202).send({ id: request.params.id, task_id: taskId });
    },
  );

  app.post(
    '/api/dead-letters/requeue',
    {
      schema: {
        summary: 'requeue some or all dead letters',
        tags: ['dead letters'],
        body: RequeueBody,
        response: {
          202: Type.Object({ requeued: Type.Array(Requeued), count: Type.Integer(), not_requeued: Type.Array(Type.Object({ id: Type.String(), reason: Type.String() })) }),
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const chosen = [b.ids !== undefined, b.all === true].filter(Boolean).length;
      if (chosen > 1 || (chosen === 0 && b.job === undefined)) {
        throw new AppError('invalid_input', 'body: give either "ids" (a list of run ids), or "all": true, or "job" (every dead letter of that job)');
      }
      const limit = b.limit ?? MAX_REQUEUE_BATCH;
      const ids = await deadLetterIds(db, { job: jobFilterName(b.job), ids: b.ids, limit });
      const requeued: { id: string; task_id: string }[] = [];
      const notRequeued: { id: string; reason: string }[] = [];
      for (const id of ids) {
        try {
          requeued.push({ id, task_id: await requeueRun(db, deps.boss, id, { trigger: 'manual', onlyDeadLetter: true }) });
        } catch (err) {
          // Another caller requeued it in the meantime: report it, keep going.
          if (err instanceof AppError) notRequeued.push({ id, reason: err.message });
          else throw err;
        }
      }
      const found = new Set(ids);
      for (const id of b.ids ?? []) if (!found.has(id)) notRequeued.push({ id, reason: 'not a dead letter (unknown, not failed, or already requeued)' });
      return reply.status(202).send({ requeued, count: requeued.length, not_requeued: notRequeued });
    },
  );

  app.post(
    '/api/dead-letters/purge',
    {
      schema: {
        summary: 'delete dead letters older than a given age',
        tags: ['dead letters'],
        body: PurgeBody,
        response: { 200: Type.Object({ purged: Type.Integer() }), ...errors },
      },
    },
    async (request) => {
      const before = new Date(Date.now() - request.body.older_than_hours * 3_600_000);
      return { purged: await purgeDeadLetters(db, before, jobFilterName(request.body.job)) };
    },
  );
}
