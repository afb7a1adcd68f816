/**
 * Wombat's error vocabulary. Classes exist only where a caller branches on them;
 * everything else is an AppError with a stable `code`.
 */
export class AppError extends Error {
  readonly code: string;
  readonly details: unknown;

  constructor(code: string, message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.details = options.details;
  }
}

/** Invalid input from a person or a caller: says what to fix. Never retried. */
export class ValidationError extends AppError {
  readonly problems: string[];

  constructor(problems: string[], message = problems.join('; ')) {
    super('invalid_input', message, { details: problems });
    this.name = 'ValidationError';
    this.problems = problems;
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
