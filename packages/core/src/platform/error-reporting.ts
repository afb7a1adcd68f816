import { readFileSync } from 'node:fs';
import path from 'node:path';
import { optionalField, str } from './config.ts';
import type { Logger } from './logger.ts';
import { repoRoot } from './paths.ts';

/**
 * Error tracking through Sentry (SENTRY_DSN), as the scheduler engine Wombat replaces had it.
 * Unset, nothing of Sentry is loaded: `@sentry/node` is imported only by createErrorReporter
 * when a DSN is configured. Set, every service reports what nothing handled (an uncaught
 * exception, an unhandled rejection, a failed start) and every run that failed for good, tagged
 * with the service, release and environment. Secrets are scrubbed from each event before it is
 * sent (scrubEvent).
 */

/** A run whose last attempt failed, or that was lost with its worker on its last attempt. */
export interface RunFailure {
  job: string;
  runId: string;
  attempt: number;
  scheduleId: number | null;
  scheduleName: string | null;
  error: unknown;
}

export interface ErrorReporter {
  readonly enabled: boolean;
  /** Something nothing handled: `reason` says what (uncaught exception, unhandled rejection, start failed). */
  uncaught(err: unknown, reason: string): void;
  /** An error the service answered for but did not expect (an api request that failed with 500). */
  unexpected(err: unknown, context: Record<string, string | number>): void;
  runFailed(failure: RunFailure): void;
  /** Sends what is still queued, waiting at most `timeoutMs`; false when that was not enough. */
  close(timeoutMs: number): Promise<boolean>;
}

/** The reporter without a DSN: does nothing, loads nothing. */
export const NO_ERROR_REPORTER: ErrorReporter = {
  enabled: false,
  uncaught() {},
  unexpected() {},
  runFailed() {},
  close: async () => true,
};

const version = (JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

function parseDsn(v: string): string {
  let url: URL | undefined;
  try {
    url = new URL(v);
  } catch {
    url = undefined;
  }
  // A DSN names its key (the URL's user) and its project (the last path segment).
  if (!url || !/^https?:$/.test(url.protocol) || !url.username || !/\/\d+$/.test(url.pathname)) throw new Error('must be a DSN like https://<key>@o1.ingest.sentry.io/<project>');
  return v;
}

export const errorReportingFields = {
  sentryDsn: optionalField('SENTRY_DSN', 'Sentry DSN: report uncaught errors and runs that fail for good to it; unset: no error tracking (nothing of Sentry is loaded)', parseDsn, { secret: true }),
  sentryEnvironment: str('SENTRY_ENVIRONMENT', 'environment tag of the reports sent to SENTRY_DSN', { default: 'production' }),
  sentryRelease: str('SENTRY_RELEASE', 'release tag of the reports sent to SENTRY_DSN', { default: `wombat@${version}` }),
};

/** Environment variables whose names say they hold a credential: their values never leave in a report. */
const SECRET_NAME = /(TOKEN|SECRET|PASSWORD|PASSWD|APP_?KEY|API_?KEY|DSN|WEBHOOK_URL|SMTP_URL|CLIENT_ID)$/i;
/** Object keys whose values are credentials wherever they appear in an event. */
const SECRET_KEY = /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|appkey|appsecret|.*(token|secret|password|passwd|dsn|api_?key|webhook_?url|smtp_?url))$/i;
const REDACTED = '[redacted]';

/** The values of secret-named variables in `env` (8 characters or more: shorter ones would blank out ordinary words). */
export function secretValues(env: Record<string, string | undefined>): string[] {
  return Object.entries(env)
    .filter(([k, v]) => SECRET_NAME.test(k) && v !== undefined && v.trim().length >= 8)
    .map(([, v]) => v!.trim())
    .sort((a, b) => b.length - a.length);
}

/** `text` with credentials blanked: known secret values, URL passwords, bearer tokens, `token=`-style pairs. */
export function scrubText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.replaceAll(s, REDACTED);
  return out
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)([^\s:/@]*):([^\s/@]+)@/gi, `$1$2:${REDACTED}@`)
    .replace(/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}/gi, `$1 ${REDACTED}`)
    .replace(/\b(token|access_token|api_key|apikey|password|passwd|secret|appsecret|appkey)(["']?\s*[=:]\s*["']?)[^\s"'&,;]+/gi, `$1$2${REDACTED}`);
}

/** A copy of a Sentry event (any JSON-like value) with every credential scrubbed, by key and by text. */
export function scrubEvent<T>(value: T, secrets: readonly string[]): T {
  const seen = new WeakMap<object, unknown>();
  const walk = (v: unknown, key: string | undefined): unknown => {
    if (key !== undefined && SECRET_KEY.test(key) && v !== null && v !== undefined && typeof v !== 'object') return REDACTED;
    if (typeof v === 'string') return scrubText(v, secrets);
    if (v === null || typeof v !== 'object') return v;
    if (seen.has(v)) return seen.get(v);
    if (Array.isArray(v)) {
      const out: unknown[] = [];
      seen.set(v, out);
      for (const item of v) out.push(walk(item, undefined));
      return out;
    }
    const out: Record<string, unknown> = {};
    seen.set(v, out);
    for (const [k, item] of Object.entries(v)) out[k] = walk(item, k);
    return out;
  };
  return walk(value, undefined) as T;
}

function asError(err: unknown): Error {
  if (err instanceof Error) return err;
  if (err !== null && typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string') {
    const e = err as { message: string; code?: unknown; name?: unknown };
    return Object.assign(new Error(e.message), { name: typeof e.name === 'string' ? e.name : 'Error', ...(typeof e.code === 'string' ? { code: e.code } : {}) });
  }
  return new Error(typeof err === 'string' ? err : JSON.stringify(err));
}

/**
 * The reporter for a service: NO_ERROR_REPORTER without a DSN, else @sentry/node, loaded here and
 * set up for errors only (no tracing, no instrumentation of other modules, none of its own
 * process handlers: Wombat's runService decides how a process ends).
 */
export async function createErrorReporter(o: {
  dsn: string | undefined;
  service: string;
  environment: string;
  release: string;
  env: Record<string, string | undefined>;
  log: Logger;
}): Promise<ErrorReporter> {
  if (!o.dsn) return NO_ERROR_REPORTER;
  const Sentry = await import('@sentry/node');
  const secrets = [...new Set([o.dsn, ...secretValues(o.env)])];
  Sentry.init({
    dsn: o.dsn,
    release: o.release,
    environment: o.environment,
    defaultIntegrations: false,
    integrations: [Sentry.linkedErrorsIntegration()],
    registerEsmLoaderHooks: false,
    skipOpenTelemetrySetup: true,
    sendDefaultPii: false,
    initialScope: { tags: { service: o.service } },
    beforeSend: (event) => scrubEvent(event, secrets),
  });
  o.log.info({ environment: o.environment, release: o.release }, 'reporting errors to SENTRY_DSN');
  const capture = (err: unknown, level: 'fatal' | 'error', tags: Record<string, string>, context: Record<string, unknown> | undefined, fingerprint?: string[]) => {
    Sentry.withScope((scope) => {
      scope.setLevel(level);
      scope.setTags(tags);
      if (context) scope.setContext('run', context);
      if (fingerprint) scope.setFingerprint(fingerprint);
      Sentry.captureException(asError(err));
    });
  };
  return {
    enabled: true,
    uncaught(err, reason) {
      capture(err, 'fatal', { reason }, undefined);
    },
    unexpected(err, context) {
      capture(err, 'error', Object.fromEntries(Object.entries(context).map(([k, v]) => [k, String(v)])), undefined);
    },
    runFailed(f) {
      const code = f.error !== null && typeof f.error === 'object' && typeof (f.error as { code?: unknown }).code === 'string' ? (f.error as { code: string }).code : 'error';
      const schedule = f.scheduleName ?? (f.scheduleId === null ? 'none' : String(f.scheduleId));
      capture(
        f.error,
        'error',
        { job: f.job, run_id: f.runId, attempt: String(f.attempt), schedule, error_code: code },
        { run_id: f.runId, job: f.job, attempt: f.attempt, schedule_id: f.scheduleId, schedule: f.scheduleName },
        // One issue per job and kind of failure, however many runs fail that way.
        ['run-failed', f.job, code],
      );
    },
    close: (timeoutMs) => Sentry.close(timeoutMs),
  };
}
