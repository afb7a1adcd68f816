import { backfillSchedule, cancelRun, resumeBackfill } from '@wombat/core/runs';
import { getSchedule } from '@wombat/core/schedules';
import Type from 'typebox';
import type { App, AppDeps } from '../deps.ts';
import { errorBody, notFound } from '../http-errors.ts';
import { getRun } from '../runs-store.ts';
import { ErrorSchema, NoBodySchema, RunSchema, UuidSchema, runView } from '../views.ts';

const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema };
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: 9_007_199_254_740_991, description: 'schedule id' }) }, { additionalProperties: false });

const BackfillBody = Type.Object(
  {
    from: Type.String({ description: 'start of the range (inclusive): an ISO time, or a date (midnight in the schedule\'s time zone)' }),
    to: Type.String({ description: 'end of the range (exclusive), not later than now: an ISO time or a date' }),
    dry_run: Type.Optional(Type.Boolean({ description: 'answer the plan only; nothing is recorded or published' })),
    max: Type.Optional(Type.Integer({ description: 'refuse a range with more occurrences than this (default 1000, at most 100000)' })),
    concurrency: Type.Optional(Type.Integer({ description: 'child runs queued, running or retrying at once (default 1, at most 100)' })),
    rerun: Type.Optional(Type.Boolean({ description: 'run occurrences that completed already too (skipped by default)' })),
    pause_on_failure: Type.Optional(Type.Boolean({ description: 'after a child fails, release no more children: the backfill is held until resumed or cancelled' })),
  },
  { additionalProperties: false },
);

const Occurrence = Type.Object({
  schedule_id: Type.Integer({ description: 'the occurrence\'s schedule: the one backfilled or one of its prerequisites (after), covered over the same range' }),
  schedule: Type.String({ description: 'that schedule\'s name' }),
  job: Type.String(),
  scheduled_for: Type.String({ format: 'date-time' }),
  params: Type.Object({}, { additionalProperties: true, description: 'the schedule\'s params plus period {from, to}, the occurrence\'s logical period' }),
  existing: Type.Union([Type.Literal('completed'), Type.Literal('in_progress'), Type.Literal('failed'), Type.Literal('none')], {
    description: 'what is recorded for this occurrence already: completed (by any run), else in_progress (a run of it has not finished; skipped), else failed, else none',
  }),
  action: Type.Union([Type.Literal('run'), Type.Literal('skip')], { description: 'skip: it completed already and rerun is off' }),
});

const Plan = {
  schedule_id: Type.Integer(),
  from: Type.String({ format: 'date-time' }),
  to: Type.String({ format: 'date-time' }),
  concurrency: Type.Integer(),
  occurrences: Type.Array(Occurrence, { description: 'the schedule\'s occurrences and its prerequisites\' (transitively), by time' }),
  run: Type.Integer({ description: 'occurrences that get a child run' }),
  skip: Type.Integer({ description: 'occurrences skipped' }),
  notes: Type.Array(Type.String(), { description: 'the prerequisites covered, and what a job collects for a past period that is not of that period' }),
};

/**
 * Backfills (packages/core/src/runs/backfill.ts): the plan of a past range of a schedule's
 * occurrences (and of its prerequisites', which the backfill runs first, period by period), and its start as one parent run (trigger backfill) with a child run per
 * occurrence; resuming one paused after a failure. Cancelling is POST /api/runs/{id}/cancel.
 */
export function backfillRoutes(app: App, deps: AppDeps): void {
  const db = deps.db;

  app.post(
    '/api/schedules/:id/backfill',
    {
      schema: {
        summary: 'run a schedule\'s past occurrences in [from, to): dry_run answers the plan (200); otherwise 202 with the parent run',
        tags: ['schedules'],
        params: IdParams,
        body: BackfillBody,
        response: {
          200: Type.Object({ ...Plan, dry_run: Type.Literal(true) }),
          202: Type.Object({ ...Plan, dry_run: Type.Literal(false), run_id: UuidSchema, status: Type.Literal('running') }),
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const s = await getSchedule(db, request.params.id);
      if (!s) throw notFound('schedule', request.params.id);
      const b = request.body;
      const answer = await backfillSchedule(db, deps.boss, s, {
        from: b.from,
        to: b.to,
        max: b.max,
        concurrency: b.concurrency,
        rerun: b.rerun,
        pauseOnFailure: b.pause_on_failure,
        dryRun: b.dry_run,
      });
      const body = {
        schedule_id: s.id,
        from: answer.options.from.toISOString(),
        to: answer.options.to.toISOString(),
        concurrency: answer.options.concurrency,
        occurrences: answer.plan,
        run: answer.plan.filter((p) => p.action === 'run').length,
        skip: answer.plan.filter((p) => p.action === 'skip').length,
        notes: answer.notes,
      };
      if (!answer.runId) return { ...body, dry_run: true as const };
      return reply
        .status(202)
        .header('location', `/api/runs/${answer.runId}`)
        .send({ ...body, dry_run: false as const, run_id: answer.runId, status: 'running' as const });
    },
  );

  app.post(
    '/api/runs/:id/resume',
    {
      schema: {
        summary: 'resume a backfill paused after a failure (pause_on_failure): it releases its remaining children again',
        tags: ['runs'],
        params: Type.Object({ id: UuidSchema }, { additionalProperties: false }),
        body: NoBodySchema,
        response: { 200: RunSchema, ...errors },
      },
    },
    async (request) => {
      await resumeBackfill(db, deps.boss, request.params.id);
      return runView((await getRun(db, request.params.id))!);
    },
  );

  app.post(
    '/api/runs/:id/cancel',
    {
      schema: {
        summary: 'cancel one unfinished run (a backfill: with every child not finished yet); answers the run',
        tags: ['runs'],
        params: Type.Object({ id: UuidSchema }, { additionalProperties: false }),
        body: NoBodySchema,
        response: { 200: RunSchema, ...errors },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      const outcome = await cancelRun(db, deps.boss, id);
      if (!outcome) throw notFound('run', id);
      if (!outcome.ok) return reply.status(409).send(errorBody('run_finished', `run ${id} already ended as ${outcome.state}`));
      return runView((await getRun(db, id))!);
    },
  );
}
