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
  // alert channels (issue 13): webhook URLs carry their credential in the path
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
}

export function createLogger(opts: LoggerOptions): Logger {
  const format = opts.format ?? 'auto';
  const usePretty = format === 'pretty' || (format === 'auto' && opts.isTty === true);
  const base = {
    name: opts.name,
    level: opts.level ?? 'info',
    redact: { paths: redactPaths, censor: '[redacted]' },
    base: { service: opts.name },
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
