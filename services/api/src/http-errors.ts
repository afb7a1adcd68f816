import { AppError, type ErrorReporter, type FieldIssue, isDatabaseUnavailable } from '@wombat/core/platform';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

/** The JSON body of every error answer. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown; field?: string; issues?: FieldIssue[] };
}

/** AppError codes the api answers with a status other than 500. One table, one place. */
const statusByCode: Record<string, number> = {
  invalid_input: 400,
  invalid_request: 400,
  unauthorized: 401,
  admin_token_unset: 401,
  forbidden: 403,
  not_found: 404,
  route_not_found: 404,
  run_not_found: 404,
  schedule_not_found: 404,
  task_finished: 409,
  task_not_finished: 409,
  already_requeued: 409,
  not_a_dead_letter: 409,
  schedule_name_taken: 409,
  schedule_built_in: 409,
  backfill_too_large: 400,
  backfill_unsupported: 400,
  nothing_to_backfill: 409,
  not_a_backfill: 409,
  backfill_not_paused: 409,
  backfill_not_requeued: 409,
  run_finished: 409,
  schedule_in_use: 409,
  database_unavailable: 503,
};

/** Seconds a client is told to wait before retrying while the database is unavailable. */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

export function statusForCode(code: string): number {
  const known = statusByCode[code];
  if (known !== undefined) return known;
  if (code.endsWith('_not_found')) return 404;
  if (code.endsWith('_taken') || code.endsWith('_conflict') || code.startsWith('already_')) return 409;
  if (code.startsWith('invalid_') || code.endsWith('_invalid')) return 400;
  return 500;
}

/**
 * With issues, the body also names the field of each problem (`issues`) and, when
 * every problem concerns the same field, that field (`field`): a form places its
 * errors by these, never by reading the message.
 */
export function errorBody(code: string, message: string, details?: unknown, issues?: FieldIssue[]): ErrorBody {
  const fields = new Set(issues?.map((i) => i.field));
  const field = fields.size === 1 ? [...fields][0] : null;
  return {
    error: {
      code,
      message,
      ...(details !== undefined ? { details } : {}),
      ...(field ? { field } : {}),
      ...(issues && issues.length > 0 ? { issues } : {}),
    },
  };
}

export function notFound(what: string, id: string | number): AppError {
  return new AppError(`${what}_not_found`, `no ${what} with id ${id}`);
}

interface AjvIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/**
 * One readable line per problem: where, and what it must be. A union of literals
 * fails once per literal and again as anyOf: those fold into "must be one of ...".
 */
function describeValidation(context: string, issues: AjvIssue[]): FieldIssue[] {
  const allowed = new Map<string, unknown[]>();
  for (const i of issues) {
    if (i.keyword === 'const') allowed.set(i.instancePath, [...(allowed.get(i.instancePath) ?? []), i.params.allowedValue]);
  }
  const lines: FieldIssue[] = [];
  // The field is the top-level property of the body, query or params that the problem is in.
  const add = (path: string, message: string) => {
    if (!lines.some((l) => l.message === message)) lines.push({ field: path.split('/')[1] || null, message });
  };
  for (const i of issues) {
    const where = `${context}${i.instancePath.replaceAll('/', '.')}`;
    const at = i.instancePath;
    if (i.keyword === 'const' || (i.keyword === 'type' && allowed.has(at))) continue;
    if (i.keyword === 'anyOf' && allowed.has(at)) {
      add(at, `${where} must be one of ${allowed.get(at)!.join(', ')}`);
    } else if (i.keyword === 'additionalProperties') {
      const names = (i.params.additionalProperties as string[] | undefined) ?? [String(i.params.additionalProperty)];
      for (const n of names) add(`${at}/${n}`, `${where} has unknown field ${n}`);
    } else if (i.keyword === 'boolean' && at) {
      // A property the schema forbids (additionalProperties: false), reported at the property itself.
      const parts = at.split('/');
      add(at, `${context}${parts.slice(0, -1).join('.')} has unknown field ${parts.at(-1)}`);
    } else if (i.keyword === 'required') {
      const names = (i.params.requiredProperties as string[] | undefined) ?? [String(i.params.missingProperty)];
      for (const n of names) add(`${at}/${n}`, `${where}.${n} is required`);
    } else if (i.keyword === 'enum') {
      add(at, `${where} must be one of ${(i.params.allowedValues as unknown[]).join(', ')}`);
    } else {
      add(at, `${where} ${i.message ?? 'is invalid'}`);
    }
  }
  return lines.length > 0 ? lines : [{ field: null, message: `${context} is invalid` }];
}

/**
 * Maps every failure to a status and the JSON error body: request validation and
 * body parsing (4xx, saying what to fix), AppError codes via `statusForCode`, and
 * anything else as a logged 500 that never leaks internals (and is reported to
 * `reporter`, SENTRY_DSN, when there is one).
 */
export function handleError(err: FastifyError | AppError | Error, request: FastifyRequest, reply: FastifyReply, reporter?: ErrorReporter): void {
  const unexpected = () => reporter?.unexpected(err, { method: request.method, route: request.routeOptions.url ?? request.url.split('?')[0]! });
  const fe = err as FastifyError & { validation?: AjvIssue[]; validationContext?: string };
  if (fe.validation) {
    const issues = describeValidation(fe.validationContext ?? 'request', fe.validation);
    const problems = issues.map((i) => i.message);
    void reply.status(400).send(errorBody('invalid_request', problems.join('; '), problems, issues));
    return;
  }
  // Before AppError: a database deadline is an AppError too. Connection refused or reset,
  // server shutting down or starting (57P01, 57P03), SQLSTATE class 08, deadlines: the
  // request may well succeed later, so 503 with Retry-After rather than 500.
  if (isDatabaseUnavailable(err)) {
    request.log.warn({ err: { message: err.message, code: (err as { code?: unknown }).code } }, 'database unavailable');
    void reply
      .status(503)
      .header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS))
      .send(errorBody('database_unavailable', 'the database is unavailable or did not answer in time; retry later'));
    return;
  }
  if (err instanceof AppError) {
    const status = statusForCode(err.code);
    if (status >= 500) {
      request.log.error({ err }, 'request failed');
      unexpected();
      void reply.status(status).send(errorBody(err.code, err.message));
      return;
    }
    void reply.status(status).send(errorBody(err.code, err.message, err.details, err.issues));
    return;
  }
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status >= 400 && status < 500) {
    const code = fe.code ? fe.code.replace(/^FST_ERR_/, '').toLowerCase() : 'bad_request';
    void reply.status(status).send(errorBody(code, clientMessage(fe, status)));
    return;
  }
  request.log.error({ err }, 'request failed');
  unexpected();
  void reply.status(500).send(errorBody('internal', 'internal error; the api log has the details'));
}

function clientMessage(err: FastifyError, status: number): string {
  if (status === 415) return `${err.message}; send JSON with Content-Type: application/json`;
  if (status === 413) return `${err.message}; the body is larger than the api accepts (API_BODY_LIMIT_BYTES)`;
  if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return `the body is not valid JSON: ${err.message}`;
  return err.message;
}
