import type { Transporter } from 'nodemailer';
import type { Logger } from '../platform/logger.ts';
import type { AlertChannelConfig } from './config.ts';
import type { AlertMessage, ChannelName } from './types.ts';

/** What a channel answered: sent, or why not and whether trying again can help. */
export type SendResult =
  | { ok: true; response: string }
  | { ok: false; permanent: boolean; error: string; retryAfterMs?: number };

export interface Channel {
  readonly name: ChannelName;
  send(message: AlertMessage): Promise<SendResult>;
  close(): void;
}

/**
 * Hides every secret (webhook URLs and their paths, SMTP credentials) in a text
 * that may come back from a library or a server, before it is logged or stored.
 */
export function secretScrubber(secrets: (string | undefined)[]): (text: string) => string {
  const parts = new Set<string>();
  for (const s of secrets) {
    if (!s) continue;
    parts.add(s);
    try {
      const u = new URL(s);
      if (u.pathname.length > 1) parts.add(u.pathname.slice(1));
      if (u.password) {
        parts.add(u.password);
        parts.add(decodeURIComponent(u.password));
      }
      if (u.search.length > 1) parts.add(u.search.slice(1));
    } catch {
      // not a URL: the whole string is already listed
    }
  }
  const list = [...parts].filter((p) => p.length >= 4).sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text;
    for (const p of list) out = out.split(p).join('[redacted]');
    return out;
  };
}

const EMOJI: Record<string, string> = { critical: ':rotating_light:', warning: ':warning:', info: ':information_source:' };

/** The one-line title every channel shows: severity or RESOLVED, then the subject. */
export function messageTitle(m: AlertMessage): string {
  if (m.event === 'resolved') return `RESOLVED: ${m.subject}`;
  if (m.event === 'report' || m.event === 'test') return m.subject;
  const again = m.event === 'repeated' ? ' (still open)' : m.event === 'escalated' ? ' (escalated)' : '';
  return `${m.severity.toUpperCase()}: ${m.subject}${again}`;
}

function slackText(m: AlertMessage): string {
  const icon = m.event === 'resolved' ? ':white_check_mark:' : m.event === 'report' ? ':bar_chart:' : (EMOJI[m.severity] ?? '');
  return `${icon} *${messageTitle(m)}*\n${m.message}${m.delivery_id ? `\n_ref ${m.delivery_id}_` : ''}`;
}

function truncate(s: string, n = 300): string {
  return s.length > n ? `${s.slice(0, n)}...` : s;
}

function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(at - Date.now(), 0) : undefined;
}

/**
 * POSTs JSON with a deadline. 2xx is sent; 408, 429 and 5xx are worth retrying
 * (429 after Retry-After); other 4xx (a revoked Slack hook answers 403/404/410)
 * will fail the same way every time.
 */
async function postJson(url: string, body: unknown, timeoutMs: number, scrub: (s: string) => string): Promise<SendResult> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = truncate(scrub(await res.text()));
    if (res.ok) return { ok: true, response: `${res.status} ${text}`.trim() };
    const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
    const after = retryAfterMs(res.headers.get('retry-after'));
    return { ok: false, permanent: !retryable, error: `HTTP ${res.status} ${text}`.trim(), ...(after !== undefined ? { retryAfterMs: after } : {}) };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const reason = e.name === 'TimeoutError' || e.name === 'AbortError' ? `no answer within ${timeoutMs} ms` : `${e.message}${e.cause?.code ? ` (${e.cause.code})` : e.cause?.message ? ` (${e.cause.message})` : ''}`;
    return { ok: false, permanent: false, error: scrub(reason) };
  }
}

export function slackChannel(webhookUrl: string, opts: { timeoutMs: number; scrub: (s: string) => string }): Channel {
  return {
    name: 'slack',
    send: (m) => postJson(webhookUrl, { text: slackText(m) }, opts.timeoutMs, opts.scrub),
    close() {},
  };
}

export function webhookChannel(url: string, opts: { timeoutMs: number; scrub: (s: string) => string }): Channel {
  return {
    name: 'webhook',
    send: (m) => postJson(url, m, opts.timeoutMs, opts.scrub),
    close() {},
  };
}

export function emailChannel(opts: { smtpUrl: string; from: string; to: string[]; timeoutMs: number; scrub: (s: string) => string }): Channel {
  let transport: Transporter | undefined;
  return {
    name: 'email',
    async send(m) {
      try {
        // nodemailer is loaded at the first alert mailed (~5 MiB of RSS every service would otherwise carry).
        const { createTransport } = await import('nodemailer');
        // One connection per message: alerts are rare and a pooled connection can go stale.
        transport ??= createTransport({
          url: opts.smtpUrl,
          connectionTimeout: opts.timeoutMs,
          greetingTimeout: opts.timeoutMs,
          socketTimeout: opts.timeoutMs,
          dnsTimeout: opts.timeoutMs,
          logger: false,
          debug: false,
        });
        const info = (await transport.sendMail({
          from: opts.from,
          to: opts.to,
          subject: `[Wombat] ${messageTitle(m)}`,
          // A repeat of this delivery carries the same Message-ID: mail systems and readers drop it.
          ...(m.delivery_id ? { messageId: `<${m.delivery_id}@${messageIdDomain(opts.from)}>` } : {}),
          text: `${m.message}\n\nalert ${m.alert_id} (${m.kind}, key ${m.key}), opened ${m.opened_at}${m.resolved_at ? `, resolved ${m.resolved_at}` : ''}\n`,
          ...(m.attachments ? { attachments: m.attachments.map((a) => ({ filename: a.filename, content: a.content, contentType: a.content_type })) } : {}),
        })) as { response?: string };
        return { ok: true, response: truncate(opts.scrub(String(info.response ?? 'accepted'))) };
      } catch (err) {
        const e = err as Error & { responseCode?: number; code?: string };
        // 5xx SMTP replies are permanent (bad recipient, refused sender); 4xx and connection errors are not.
        const permanent = typeof e.responseCode === 'number' && e.responseCode >= 500;
        return { ok: false, permanent, error: truncate(opts.scrub(`${e.code ? `${e.code}: ` : ''}${e.message}`)) };
      }
    },
    close: () => transport?.close(),
  };
}

/** The domain of the sender address (Message-IDs are `<id@domain>`), or wombat.invalid. */
function messageIdDomain(from: string): string {
  return /@([A-Za-z0-9.-]+)>?\s*$/.exec(from)?.[1] ?? 'wombat.invalid';
}

export interface ChannelSet {
  channels: Channel[];
  scrub: (s: string) => string;
  close(): void;
}

/** The names of the channels a configuration turns on, without making them: whom a message is for. */
export function channelNames(c: AlertChannelConfig): ChannelName[] {
  return channelsFromConfig(c).channels.map((ch) => ch.name);
}

/** The configured channels; logs once which are on, and says so when none is. */
export function channelsFromConfig(c: AlertChannelConfig, log?: Logger): ChannelSet {
  const scrub = secretScrubber([c.slackWebhookUrl, c.smtpUrl, c.alertWebhookUrl]);
  const timeoutMs = c.alertChannelTimeoutMs;
  const channels: Channel[] = [];
  if (c.slackWebhookUrl && c.slackEnabled) channels.push(slackChannel(c.slackWebhookUrl, { timeoutMs, scrub }));
  if (c.smtpUrl && c.alertEmailFrom && c.alertEmailTo.length > 0) {
    channels.push(emailChannel({ smtpUrl: c.smtpUrl, from: c.alertEmailFrom, to: c.alertEmailTo, timeoutMs, scrub }));
  }
  if (c.alertWebhookUrl) channels.push(webhookChannel(c.alertWebhookUrl, { timeoutMs, scrub }));
  if (log) {
    if (channels.length === 0) log.warn('no alert channel configured (SLACK_WEBHOOK_URL, SMTP_URL, ALERT_WEBHOOK_URL): alerts are recorded, not sent');
    else log.info({ channels: channels.map((ch) => ch.name), slackDisabled: c.slackWebhookUrl !== undefined && !c.slackEnabled }, 'alert channels');
  }
  return {
    channels,
    scrub,
    close() {
      for (const ch of channels) ch.close();
    },
  };
}
