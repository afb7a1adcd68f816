import { ValidationError, type FieldIssue } from '@wombat/core/platform';
import {
  deleteSchedule,
  describeTrigger,
  getSchedule,
  insertSchedule,
  listSchedules,
  nextOccurrences,
  ScheduleInputSchema,
  SchedulePatchSchema,
  setScheduleStatus,
  updateSchedule,
  validateScheduleInput,
} from '@wombat/core/schedules';
import { triggerSchedule } from '@wombat/core/runs';
import type { FastifySchemaCompiler } from 'fastify';
import Type, { type TSchema } from 'typebox';
import type { App, AppDeps } from '../deps.ts';
import { notFound } from '../http-errors.ts';
import { ScheduleSchema, scheduleView } from '../schedule-views.ts';
import { validatorCompiler } from '../validation.ts';
import { ErrorSchema, NoBodySchema } from '../views.ts';

export const MAX_PREVIEW_COUNT = 100;
const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema };
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: 9_007_199_254_740_991, description: 'schedule id' }) }, { additionalProperties: false });

/**
 * Schedule bodies are typed by core's shared schedule schema (ScheduleInputSchema,
 * SchedulePatchSchema), so the OpenAPI document shows every field. The body is
 * checked by core's validateScheduleInput, which applies that same schema and the
 * checks a schema cannot express (cron parses, IANA time zone, exactly one
 * trigger, params fit the job) with one message per field saying what to fix, as
 * the CLI and the engine do; the route's own validator leaves the body to it.
 */
const coreChecksBody: FastifySchemaCompiler<TSchema> = (req) => (req.httpPart === 'body' ? (value: unknown) => ({ value }) : validatorCompiler(req));

/** The problems as lines (message, details) and as issues that name their field (error.issues, error.field). */
const invalid = (issues: FieldIssue[]) => new ValidationError(issues);

export function scheduleRoutes(app: App, deps: AppDeps): void {
  const db = deps.db;
  const tz = { defaultTimezone: deps.defaultTimezone ?? 'UTC' };
  const one = { 200: ScheduleSchema, ...errors };

  async function found(id: number) {
    const s = await getSchedule(db, id);
    if (!s) throw notFound('schedule', id);
    return s;
  }

  app.get(
    '/api/schedules',
    { schema: { summary: 'every schedule', tags: ['schedules'], response: { 200: Type.Object({ schedules: Type.Array(ScheduleSchema) }) } } },
    async () => ({ schedules: (await listSchedules(db)).map(scheduleView) }),
  );

  app.get('/api/schedules/:id', { schema: { summary: 'one schedule', tags: ['schedules'], params: IdParams, response: one } }, async (request) =>
    scheduleView(await found(request.params.id)),
  );

  app.post(
    '/api/schedules',
    { schema: { summary: 'create a schedule; the engine picks it up without a restart', tags: ['schedules'], body: ScheduleInputSchema, response: { 201: ScheduleSchema, ...errors } }, validatorCompiler: coreChecksBody },
    async (request, reply) => {
      const check = validateScheduleInput(request.body, tz);
      if (!check.ok) throw invalid(check.issues);
      const created = await insertSchedule(db, check.value);
      return reply.status(201).header('location', `/api/schedules/${created.id}`).send(scheduleView(created));
    },
  );

  app.patch(
    '/api/schedules/:id',
    { schema: { summary: 'change some fields of a schedule', tags: ['schedules'], params: IdParams, body: SchedulePatchSchema, response: one }, validatorCompiler: coreChecksBody },
    async (request) => {
      const check = validateScheduleInput(request.body, { partial: true });
      if (!check.ok) throw invalid(check.issues);
      const updated = await updateSchedule(db, request.params.id, check.value);
      if (!updated) throw notFound('schedule', request.params.id);
      return scheduleView(updated);
    },
  );

  app.put(
    '/api/schedules/:id',
    { schema: { summary: 'replace a schedule\'s definition', tags: ['schedules'], params: IdParams, body: ScheduleInputSchema, response: one }, validatorCompiler: coreChecksBody },
    async (request) => {
      const check = validateScheduleInput(request.body, tz);
      if (!check.ok) throw invalid(check.issues);
      const updated = await updateSchedule(db, request.params.id, check.value);
      if (!updated) throw notFound('schedule', request.params.id);
      return scheduleView(updated);
    },
  );

  app.delete(
    '/api/schedules/:id',
    { schema: { summary: 'delete a schedule (its runs stay in the history)', tags: ['schedules'], params: IdParams, body: NoBodySchema, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      if (!(await deleteSchedule(db, request.params.id))) throw notFound('schedule', request.params.id);
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/api/schedules/:id/pause',
    {
      schema: {
        summary: 'pause a schedule; occurrences while paused are not run',
        tags: ['schedules'],
        params: IdParams,
        body: Type.Optional(Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500, description: 'why, shown in the status' })) }, { additionalProperties: false })),
        response: one,
      },
    },
    async (request) => {
      const s = await setScheduleStatus(db, request.params.id, 'paused', request.body?.reason ?? null);
      if (!s) throw notFound('schedule', request.params.id);
      return scheduleView(s);
    },
  );

  app.post(
    '/api/schedules/:id/resume',
    { schema: { summary: 'resume a paused schedule', tags: ['schedules'], params: IdParams, body: NoBodySchema, response: one } },
    async (request) => {
      const s = await setScheduleStatus(db, request.params.id, 'active');
      if (!s) throw notFound('schedule', request.params.id);
      return scheduleView(s);
    },
  );

  app.post(
    '/api/schedules/:id/trigger',
    {
      schema: {
        summary: 'run a schedule now (paused or not); answers 202 with the run id',
        tags: ['schedules'],
        params: IdParams,
        body: Type.Optional(
          Type.Object(
            {
              params: Type.Optional(Type.Object({}, { additionalProperties: true })),
              force: Type.Optional(Type.Boolean({ description: 'release the schedule\'s run waiting for its prerequisites (after) now instead of starting a second run (a manual run never waits for them)' })),
            },
            { additionalProperties: false },
          ),
        ),
        response: { 202: Type.Object({ run_id: Type.String(), task_id: Type.String(), status: Type.Literal('queued') }), ...errors },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const runId = await triggerSchedule(db, deps.boss, request.params.id, { ...(b?.params !== undefined ? { params: b.params } : {}), ...(b?.force ? { force: true } : {}) });
      if (!runId) throw notFound('schedule', request.params.id);
      return reply.status(202).header('location', `/api/runs/${runId}`).send({ run_id: runId, task_id: runId, status: 'queued' as const });
    },
  );

  const PreviewAnswer = Type.Object({ trigger: Type.String(), timezone: Type.String(), occurrences: Type.Array(Type.String({ format: 'date-time' })) });
  const PreviewQuery = Type.Object(
    {
      count: Type.Integer({ minimum: 1, maximum: MAX_PREVIEW_COUNT, default: 10, description: 'how many occurrences' }),
      after: Type.Optional(Type.String({ format: 'date-time', description: 'occurrences strictly after this instant (default now)' })),
    },
    { additionalProperties: false },
  );

  app.post(
    '/api/schedules/preview',
    {
      schema: {
        summary: 'the next occurrences of a definition, before saving it (same maths as the engine)',
        tags: ['schedules'],
        querystring: PreviewQuery,
        body: SchedulePatchSchema,
        response: { 200: PreviewAnswer, ...errors },
      },
      validatorCompiler: coreChecksBody,
      // Computes, changes nothing: a reader may call it.
      config: { access: 'read' },
    },
    async (request) => {
      // A preview needs only the trigger: name and job default so a half-written definition can be tried.
      const body = { name: 'preview', job: 'canary', ...(request.body as object) };
      const check = validateScheduleInput(body, tz);
      if (!check.ok) throw invalid(check.issues);
      const after = request.query.after === undefined ? new Date() : new Date(request.query.after);
      const occurrences = nextOccurrences(check.value, after, request.query.count);
      return { trigger: describeTrigger(check.value), timezone: check.value.timezone, occurrences: occurrences.map((d) => d.toISOString()) };
    },
  );

  app.get(
    '/api/schedules/:id/preview',
    { schema: { summary: 'the next occurrences of a stored schedule', tags: ['schedules'], params: IdParams, querystring: PreviewQuery, response: { 200: PreviewAnswer, ...errors } } },
    async (request) => {
      const s = await found(request.params.id);
      const after = request.query.after === undefined ? new Date() : new Date(request.query.after);
      return { trigger: describeTrigger(s), timezone: s.timezone, occurrences: nextOccurrences(s, after, request.query.count).map((d) => d.toISOString()) };
    },
  );
}
