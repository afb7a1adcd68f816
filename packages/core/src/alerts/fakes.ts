import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';

/**
 * Local stand-ins for the outside services alerts reach, for tests: a Slack
 * incoming webhook (or any JSON webhook) and an SMTP server. They behave like
 * the real ones, errors included. Import as `@wombat/core/alerts-fakes`.
 */
interface Teardown {
  teardown(fn: () => unknown): void;
}

export type HookMode = 'ok' | 'error500' | 'hang' | 'gone';

export interface FakeHook {
  /** The webhook URL, with a secret-looking path like Slack's. */
  url: string;
  /** JSON bodies received and answered with 2xx. */
  received: unknown[];
  /** Every request, whatever was answered. */
  attempts: number;
  mode: HookMode;
}

/**
 * A Slack-like incoming webhook: 200 "ok"; `error500` answers 500; `hang` never
 * answers; `gone` answers 404 "no_service" like a deleted Slack hook.
 */
export async function startFakeHook(t: Teardown, secretPath = '/services/T0FAKE/B0FAKE/s3cr3tW3bh00kT0k3n', port = 0): Promise<FakeHook> {
  const sockets = new Set<Socket>();
  const hook: FakeHook = { url: '', received: [], attempts: 0, mode: 'ok' };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      hook.attempts++;
      if (req.method !== 'POST' || req.url !== secretPath) {
        res.writeHead(404).end('no_service');
        return;
      }
      if (hook.mode === 'hang') return;
      if (hook.mode === 'error500') {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('internal_error');
        return;
      }
      if (hook.mode === 'gone') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('no_service');
        return;
      }
      try {
        hook.received.push(JSON.parse(body));
      } catch {
        res.writeHead(400, { 'content-type': 'text/plain' }).end('invalid_payload');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  hook.url = `http://127.0.0.1:${(server.address() as { port: number }).port}${secretPath}`;
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return hook;
}

export interface FakeSmtp {
  /** smtp://user:password@127.0.0.1:port */
  url: string;
  password: string;
  messages: { from: string; to: string[]; raw: string; subject: string }[];
  /** `fail`: every message is refused with a temporary 451. */
  mode: 'ok' | 'fail';
}

/** An SMTP server (no TLS, AUTH PLAIN/LOGIN with one account) that keeps what it accepts. */
export async function startFakeSmtp(t: Teardown, password = 'smtp-pa55word-s3cret'): Promise<FakeSmtp> {
  const fake: FakeSmtp = { url: '', password, messages: [], mode: 'ok' };
  const server = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    authOptional: false,
    allowInsecureAuth: true,
    logger: false,
    onAuth(auth, _session, cb) {
      if (auth.username === 'alerts' && auth.password === password) cb(null, { user: 'alerts' });
      else cb(new Error('Invalid username or password'));
    },
    onData(stream, session, cb) {
      let raw = '';
      stream.on('data', (d: Buffer) => (raw += d.toString('utf8')));
      stream.on('end', () => {
        if (fake.mode === 'fail') {
          const err = new Error('Try again later') as Error & { responseCode: number };
          err.responseCode = 451;
          cb(err);
          return;
        }
        const subject = /^Subject: (.*(?:\r?\n[ \t].*)*)/m.exec(raw)?.[1]?.replace(/\r?\n[ \t]/g, ' ') ?? '';
        fake.messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          subject,
        });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as { port: number }).port;
  fake.url = `smtp://alerts:${password}@127.0.0.1:${port}`;
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return fake;
}

/** A TCP port that accepts connections and never says a word (an SMTP server that hangs). */
export async function startSilentPort(t: Teardown): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as { port: number }).port;
}

/** A port nothing listens on: connecting is refused. */
export async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
