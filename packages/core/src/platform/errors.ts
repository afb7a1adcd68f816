/**
 * Wombat's error vocabulary. Classes exist only where a caller branches on them;
 * everything else is an AppError with a stable `code`.
 */
export class AppError extends Error {
  readonly code: string;
  readonly details: unknown;
  /** Per problem, the input field it concerns, so a form can show it beside that field. */
  readonly issues: FieldIssue[] | undefined;

  constructor(code: string, message: string, options: { cause?: unknown; details?: unknown; issues?: FieldIssue[] } = {}) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.details = options.details;
    this.issues = options.issues;
  }
}

/** One problem with an input and the field it concerns (null when it concerns several, or the whole input). */
export interface FieldIssue {
  field: string | null;
  message: string;
}

/** Invalid input from a person or a caller: says what to fix. Never retried. */
export class ValidationError extends AppError {
  readonly problems: string[];

  /** Problems as lines, or as issues that also name their field. */
  constructor(problems: string[] | FieldIssue[], message?: string) {
    const lines = problems.map((p) => (typeof p === 'string' ? p : p.message));
    const issues = problems.every((p) => typeof p !== 'string') ? (problems as FieldIssue[]) : undefined;
    super('invalid_input', message ?? lines.join('; '), { details: lines, ...(issues ? { issues } : {}) });
    this.name = 'ValidationError';
    this.problems = lines;
  }
}

/** A failure that retrying cannot fix (bad credentials, banned, unknown symbol). */
export class PermanentError extends AppError {
  constructor(code: string, message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(code, message, options);
    this.name = 'PermanentError';
  }
}

/** Postgres SQLSTATE codes Wombat branches on. Match on these, never on message text. */
export const SQLSTATE = {
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
  checkViolation: '23514',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  undefinedTable: '42P01',
  invalidCatalogName: '3D000',
  duplicateDatabase: '42P04',
  cannotConnectNow: '57P03',
  adminShutdown: '57P01',
} as const;

export function sqlState(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}

/**
 * A plain, JSON-safe description of an error for run history and API answers.
 * No stack: run history is served by the api (whose read routes may be open),
 * so the stack stays in the logs (log the error itself under `err`).
 */
export function serializeError(err: unknown): { name: string; message: string; code?: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return {
      name: err.name,
      message: err.message,
      ...(typeof code === 'string' ? { code } : {}),
    };
  }
  return { name: 'Error', message: String(err) };
}

/**
 * A database call that passed its client-side deadline: `connect` (no connection
 * within DATABASE_CONNECT_TIMEOUT_MS), `query` (no answer within the statement
 * deadline) or `transaction` (open longer than DATABASE_TRANSACTION_TIMEOUT_MS).
 */
export class DatabaseTimeoutError extends AppError {
  readonly phase: 'connect' | 'query' | 'transaction' | 'call';
  readonly timeoutMs: number;

  constructor(phase: DatabaseTimeoutError['phase'], timeoutMs: number, what: string) {
    const first = what.replace(/\s+/g, ' ').trim().slice(0, 60);
    super('database_timeout', `database ${phase} deadline of ${timeoutMs} ms passed (${first})`);
    this.name = 'DatabaseTimeoutError';
    this.phase = phase;
    this.timeoutMs = timeoutMs;
  }
}

/** Node socket errors that mean the server cannot be reached or dropped the connection. */
const UNREACHABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);
/** postgres.js's own codes for a connection it lost or could not open. */
const DRIVER_CONNECTION_CODES = new Set(['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT']);
/** SQLSTATEs of a server going away or not yet accepting work (class 08 is matched as a class). */
const UNAVAILABLE_SQLSTATES = new Set([
  SQLSTATE.adminShutdown, // 57P01
  '57P02', // crash_shutdown
  SQLSTATE.cannotConnectNow, // 57P03
  '57P05', // idle_session_timeout: the server closed an idle session
  '53300', // too_many_connections
]);

/**
 * True when `err` says the database is unreachable or went away (rather than that
 * the statement was wrong): connection refused or reset, server shutting down or
 * starting up, SQLSTATE class 08, or a Wombat database deadline. Callers answer
 * these with "try again later" (HTTP 503), retry, or back off.
 */
export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 4) return false;
  if (err instanceof DatabaseTimeoutError) return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (UNREACHABLE_ERRNO.has(code) || DRIVER_CONNECTION_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  // node-postgres (pg-boss's driver) reports a lost connection without a code.
  if (err instanceof Error && code === undefined && /^Connection terminated|^timeout exceeded when trying to connect|^Client has encountered a connection error|^Client was closed and is not queryable/.test(err.message)) return true;
  const nested = (err as { errors?: unknown }).errors;
  if (Array.isArray(nested) && nested.some((e) => isDatabaseUnavailable(e, depth + 1))) return true;
  return isDatabaseUnavailable((err as { cause?: unknown }).cause, depth + 1);
}
