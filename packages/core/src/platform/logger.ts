import { fstatSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';

/** Paths pino blanks out wherever they appear in a log record. */
export const redactPaths = [
  'authorization',
  '*.authorization',
  '*.headers.authorization',
  '*.headers.appkey',
  '*.headers.appsecret',
  'appkey',
  'appsecret',
  '*.appkey',
  '*.appsecret',
  'token',
  '*.token',
  'access_token',
  '*.access_token',
  'password',
  '*.password',
  'databaseUrl',
  '*.databaseUrl',
  'adminToken',
  '*.adminToken',
  'readToken',
  '*.readToken',
  // alert channels: webhook URLs carry their credential in the path
  'slackWebhookUrl',
  '*.slackWebhookUrl',
  'alertWebhookUrl',
  '*.alertWebhookUrl',
  'smtpUrl',
  '*.smtpUrl',
];

export interface LoggerOptions {
  name: string;
  level?: string;
  /** auto: pretty when `isTty`, JSON lines otherwise (journald, pipes, files). */
  format?: 'auto' | 'json' | 'pretty';
  isTty?: boolean;
  destination?: NodeJS.WritableStream;
  /**
   * Start each JSON line with its syslog priority (`<3>{"level":50,...}`): journald
   * (SyslogLevelPrefix=yes, its default) files the line under that priority and
   * strips the prefix, so `journalctl -p warning` filters and `-o cat` is plain JSON.
   */
  journal?: boolean;
}

/** pino level -> syslog priority (sd-daemon(3)): fatal crit, error err, warn warning, info info, debug and trace debug. */
export function syslogPriority(level: number): number {
  if (level >= 60) return 2;
  if (level >= 50) return 3;
  if (level >= 40) return 4;
  if (level >= 30) return 6;
  return 7;
}

/**
 * True when stdout is connected to the journal: systemd sets JOURNAL_STREAM to the
 * `device:inode` of that stream, which must match stdout (it does not when output
 * is redirected, for example to a pipe through jq).
 */
export function isJournalStream(env: Record<string, string | undefined>, fd = 1): boolean {
  const expected = env.JOURNAL_STREAM;
  if (!expected) return false;
  try {
    const st = fstatSync(fd);
    return expected === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

function prefixPriority(line: string): string {
  const level = /^\{"level":(\d+)/.exec(line);
  return level ? `<${syslogPriority(Number(level[1]))}>${line}` : line;
}

/**
 * pino's error serializer, with a message that names each cause once. pino appends
 * every cause's message to the error's own, but Wombat's messages already carry
 * their cause's text ("request to api.upbit.com failed: getaddrinfo ENOTFOUND ..."),
 * which then read two and three times over. A cause whose text is there already is
 * left out; the stack still shows the whole chain.
 */
export function serializeLoggedError(err: unknown): unknown {
  const serialized = pino.stdSerializers.err(err as Error) as unknown;
  if (!(err instanceof Error) || !serialized || typeof serialized !== 'object') return serialized;
  let message = err.message;
  const seen = new Set<unknown>([err]);
  for (let cause = err.cause; cause instanceof Error && !seen.has(cause); cause = cause.cause) {
    seen.add(cause);
    if (cause.message && !message.includes(cause.message)) message += `: ${cause.message}`;
  }
  return { ...serialized, message };
}

export function createLogger(opts: LoggerOptions): Logger {
  const format = opts.format ?? 'auto';
  const usePretty = format === 'pretty' || (format === 'auto' && opts.isTty === true);
  const base = {
    name: opts.name,
    level: opts.level ?? 'info',
    redact: { paths: redactPaths, censor: '[redacted]' },
    base: { service: opts.name },
    serializers: { err: serializeLoggedError },
    ...(opts.journal && !usePretty ? { hooks: { streamWrite: prefixPriority } } : {}),
  };
  if (usePretty) {
    // pino-pretty as a synchronous stream, not a transport worker: a person at a
    // terminal wants lines in order and nothing lost when the process exits.
    const stream = pretty({ colorize: opts.isTty === true, sync: true, ignore: 'pid,hostname,service', destination: opts.destination as never });
    return pino(base, stream);
  }
  return pino(base, (opts.destination ?? pino.destination({ sync: false })) as never);
}

/** A postgres URL with its password hidden, safe to log. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable url)';
  }
}
