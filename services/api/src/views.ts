import Type from 'typebox';
import { ValidationError } from '@wombat/core/platform';
import { aliasList, JOB_TYPES, type JobType, resolveJobName, unknownJobMessage } from '@wombat/core/jobs';
import { RUN_STATES, RUN_TRIGGERS } from '@wombat/core/runs';
import type { ApiRun, ChildTally } from './runs-store.ts';

/** JSON shapes the api answers with; they also document the OpenAPI document. Run states and triggers come from core. */

/** Where a caller names a job to run: a job type, or the older setup's name for it (core's JOB_ALIASES). */
export const JobNameSchema = Type.String({
  minLength: 1,
  maxLength: 100,
  description: `job type: ${JOB_TYPES.join(', ')}; the older setup's names are accepted too: ${aliasList()}`,
});

/** The job type a JobNameSchema value names; 400 naming `field` otherwise. */
export function jobTypeOf(name: string, field: string): JobType {
  const job = resolveJobName(name);
  if (job === undefined) throw new ValidationError([{ field, message: `${field}: ${unknownJobMessage(name)}` }]);
  return job;
}
export const RunStateSchema = Type.Enum(RUN_STATES, { description: `run state: ${RUN_STATES.join(', ')}` });
export const RunTriggerSchema = Type.Enum(RUN_TRIGGERS, { description: `what created the run: ${RUN_TRIGGERS.join(', ')}` });
export const UuidSchema = Type.String({ format: 'uuid', description: 'run id (uuid); the same as the task id and the pg-boss job id' });
const time = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);
const ms = Type.Union([Type.Integer(), Type.Null()]);

/** For routes that take no options: an empty object or no body at all; anything else is a mistake worth a 400. */
export const NoBodySchema = Type.Object({}, { additionalProperties: false, description: 'no body, or {}' });

export const NoQuerySchema = Type.Object({}, { additionalProperties: false });

export const ErrorSchema = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'stable error code, e.g. invalid_request, task_not_found' }),
      message: Type.String({ description: 'what went wrong and what to fix' }),
      details: Type.Optional(Type.Unknown()),
      field: Type.Optional(Type.String({ description: 'the input field (top level of body, query or path) every problem concerns, when they concern one' })),
      issues: Type.Optional(
        Type.Array(
          Type.Object({
            field: Type.Union([Type.String(), Type.Null()], { description: 'the top-level input field, or null for several or the whole input' }),
            message: Type.String(),
          }),
          { description: 'each problem of a refused input with the field it concerns' },
        ),
      ),
    }),
  },
  { description: 'error answer' },
);

export const RunSchema = Type.Object({
  id: Type.String(),
  job: Type.String(),
  trigger: RunTriggerSchema,
  schedule_id: Type.Union([Type.Integer(), Type.Null()]),
  parent_id: Type.Union([Type.String(), Type.Null()]),
  state: RunStateSchema,
  reason: Type.Union([Type.String(), Type.Null()], {
    description:
      'why the run has no job yet or ended without running: a waiting run names the schedules it waits for (after); a skipped one that waited ' +
      'begins "dependency_failed:" (a prerequisite failed for good) or "dependency_timeout:" (not completed within wait_for) and names both schedules',
  }),
  params: Type.Unknown(),
  progress: Type.Number(),
  progress_message: Type.Union([Type.String(), Type.Null()]),
  result: Type.Unknown(),
  error: Type.Unknown(),
  attempts: Type.Integer(),
  scheduled_for: time,
  created_at: time,
  published_at: time,
  started_at: time,
  finished_at: time,
  start_lateness_ms: Type.Union([Type.Integer(), Type.Null()], { description: 'started_at minus scheduled_for' }),
  duration_ms: Type.Union([Type.Integer(), Type.Null()], { description: 'finished_at minus started_at' }),
  retry_of: Type.Union([Type.String(), Type.Null()]),
  requeued_as: Type.Union([Type.String(), Type.Null()]),
});

export const ChildTallySchema = Type.Object({
  total: Type.Integer(),
  active: Type.Integer({ description: 'children not finished yet' }),
  by_state: Type.Record(Type.String(), Type.Integer(), { description: 'how many children are in each state, e.g. {"completed": 5, "failed": 1}' }),
});

export const TaskStatusSchema = Type.Object({
  task_id: Type.String(),
  type: Type.String(),
  status: RunStateSchema,
  progress: Type.Number({ description: '0..1' }),
  progress_message: Type.Union([Type.String(), Type.Null()]),
  result: Type.Unknown(),
  error: Type.Unknown(),
  attempts: Type.Integer(),
  created_at: time,
  started_at: time,
  finished_at: time,
  queue_wait_ms: ms,
  duration_ms: ms,
  expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'when maintenance removes a finished task (TASK_RESULT_TTL_DAYS)' }),
  retry_of: Type.Union([Type.String(), Type.Null()]),
  retried_as: Type.Union([Type.String(), Type.Null()]),
  children: Type.Union([ChildTallySchema, Type.Null()], {
    description: 'a fan-out\'s child runs (collect-prices: one fetch-candles per series), by state; null for a task with none. The task is done when its status is final and children.active is 0',
  }),
});

/** GET /api/backtests/status/{id}: a task in the replaced system's shape, Wombat's own fields beside it. */
export const LegacyTaskStatusSchema = Type.Object({
  ...TaskStatusSchema.properties,
  status: Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('completed'), Type.Literal('failed')], {
    description: 'queued (waiting for an attempt), running, completed or failed (also cancelled, skipped, missed: see state)',
  }),
  error: Type.Union([Type.String(), Type.Null()], { description: 'what went wrong, or null' }),
  state: RunStateSchema,
  error_detail: Type.Unknown({ description: 'the error as GET /api/tasks/{id} gives it: code, message' }),
});

export const AcceptedSchema = Type.Object({
  task_id: Type.String(),
  status: Type.Literal('queued'),
  created_at: Type.String({ format: 'date-time' }),
});

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());
const diffMs = (later: Date | null, earlier: Date | null): number | null =>
  later === null || earlier === null ? null : Math.round(later.getTime() - earlier.getTime());

export function runView(r: ApiRun) {
  return {
    id: r.id,
    job: r.job,
    trigger: r.trigger,
    schedule_id: r.schedule_id === null ? null : Number(r.schedule_id),
    parent_id: r.parent_id,
    state: r.state,
    reason: r.reason,
    params: r.params,
    progress: r.progress,
    progress_message: r.progress_message,
    result: r.result,
    error: r.error,
    attempts: r.attempts,
    scheduled_for: iso(r.scheduled_for),
    created_at: iso(r.created_at),
    published_at: iso(r.published_at),
    started_at: iso(r.started_at),
    finished_at: iso(r.finished_at),
    start_lateness_ms: diffMs(r.started_at, r.scheduled_for),
    duration_ms: diffMs(r.finished_at, r.started_at),
    retry_of: r.retry_of,
    requeued_as: r.requeued_as,
  };
}

export function taskView(r: ApiRun, ttlDays: number, children: ChildTally | null = null) {
  const finished = r.finished_at;
  return {
    task_id: r.id,
    type: r.job,
    status: r.state,
    progress: r.progress,
    progress_message: r.progress_message,
    result: r.result,
    error: r.error,
    attempts: r.attempts,
    created_at: iso(r.created_at),
    started_at: iso(r.started_at),
    finished_at: iso(r.finished_at),
    queue_wait_ms: diffMs(r.started_at, r.created_at),
    duration_ms: diffMs(r.finished_at, r.started_at),
    expires_at: finished && r.trigger === 'task' ? new Date(finished.getTime() + ttlDays * 86_400_000).toISOString() : null,
    retry_of: r.retry_of,
    retried_as: r.requeued_as,
    children,
  };
}
