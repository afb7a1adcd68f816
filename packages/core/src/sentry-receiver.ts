import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/**
 * A local stand-in for Sentry's ingestion endpoint, for tests: it accepts what @sentry/node sends
 * to a DSN pointing at it (POST /api/<project>/envelope/) and decodes the envelopes: a header line,
 * then an item header line and its payload per item, gzip or plain.
 */
export interface SentryEnvelope {
  header: Record<string, unknown>;
  items: { header: Record<string, unknown>; payload: unknown }[];
  /** The request body as received (decompressed): for checks that a secret appears nowhere. */
  raw: string;
  /** The request's own headers (X-Sentry-Auth, content-encoding). */
  requestHeaders: IncomingMessage['headers'];
}

/** The parts of a Sentry event the tests look at; the rest stays as sent. */
export interface SentryEvent {
  level?: string;
  release?: string;
  environment?: string;
  tags?: Record<string, string>;
  contexts?: Record<string, Record<string, unknown>>;
  fingerprint?: string[];
  exception?: { values: { type?: string; value?: string; stacktrace?: { frames: unknown[] } }[] };
  [key: string]: unknown;
}

export interface SentryReceiver {
  /** A DSN to configure: http://<key>@127.0.0.1:<port>/<project>. */
  dsn: string;
  envelopes: SentryEnvelope[];
  /** The payloads of the `event` items received so far. */
  events(): SentryEvent[];
  /** Resolves with the first event `match` accepts, waiting up to `timeoutMs`. */
  waitForEvent(match: (event: SentryEvent) => boolean, timeoutMs?: number): Promise<SentryEvent>;
  close(): Promise<void>;
}

export function parseEnvelope(raw: string): Pick<SentryEnvelope, 'header' | 'items'> {
  const lines = raw.replace(/\n+$/, '').split('\n');
  const header = JSON.parse(lines[0]!) as Record<string, unknown>;
  const items: SentryEnvelope['items'] = [];
  for (let i = 1; i < lines.length; i += 2) {
    const itemHeader = JSON.parse(lines[i]!) as Record<string, unknown>;
    const text = lines[i + 1] ?? '';
    let payload: unknown = text;
    try {
      payload = JSON.parse(text);
    } catch {
      // An attachment or another non-JSON item: kept as text.
    }
    items.push({ header: itemHeader, payload });
  }
  return { header, items };
}

export async function startSentryReceiver(project = 4242, key = 'publickey0123456789'): Promise<SentryReceiver> {
  const envelopes: SentryEnvelope[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || !req.url?.startsWith(`/api/${project}/envelope/`)) {
        res.writeHead(404).end();
        return;
      }
      const body = Buffer.concat(chunks);
      const raw = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body).toString('utf8');
      envelopes.push({ ...parseEnvelope(raw), raw, requestHeaders: req.headers });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const events = () => envelopes.flatMap((e) => e.items.filter((i) => i.header.type === 'event').map((i) => i.payload as SentryEvent));
  return {
    dsn: `http://${key}@127.0.0.1:${port}/${project}`,
    envelopes,
    events,
    async waitForEvent(match, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const found = events().find(match);
        if (found) return found;
        if (Date.now() > until) throw new Error(`no matching Sentry event within ${timeoutMs} ms; received: ${JSON.stringify(events().map((e) => ({ level: e.level, tags: e.tags })))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
