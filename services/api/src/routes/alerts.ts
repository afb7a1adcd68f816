import {
  ALERT_KINDS,
  channelsFromConfig,
  listAlerts,
  messageOf,
  recordDirectDelivery,
  recordMessageAlert,
  type AlertChannelConfig,
  type AlertView,
} from '@wombat/core/alerts';
import Type from 'typebox';
import type { App, AppDeps } from '../deps.ts';
import { ErrorSchema } from '../views.ts';

const time = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);
const literals = <T extends string>(values: readonly T[], description: string) => Type.Union(values.map((v) => Type.Literal(v)), { description });

const DeliverySchema = Type.Object({
  channel: Type.String({ description: 'slack, email or webhook' }),
  event: Type.String({ description: 'opened, escalated, repeated, resolved, report or test' }),
  state: Type.String({ description: 'pending (due or waiting to retry), sending, sent, or failed (given up)' }),
  attempts: Type.Integer(),
  next_attempt_at: time,
  last_error: Type.Union([Type.String(), Type.Null()], { description: "the channel's last failure, secrets hidden" }),
  response: Type.Union([Type.String(), Type.Null()], { description: 'what the channel answered when it accepted the message' }),
  created_at: time,
  sent_at: time,
});

const AlertSchema = Type.Object({
  id: Type.Integer(),
  key: Type.String({ description: 'the condition: one open alert per key' }),
  kind: Type.String({ description: `${ALERT_KINDS.join(', ')}` }),
  severity: Type.String({ description: 'info, warning or critical' }),
  state: Type.String({ description: 'open or resolved' }),
  subject: Type.String(),
  message: Type.String(),
  details: Type.Unknown(),
  opened_at: time,
  updated_at: time,
  resolved_at: time,
  last_notified_at: time,
  notifications: Type.Integer({ description: 'messages sent about this alert (opened, escalated, repeated, resolved)' }),
  deliveries: Type.Array(DeliverySchema, { description: 'per channel and message: what happened to it' }),
});

const AlertsQuery = Type.Object(
  {
    state: Type.Optional(literals(['open', 'resolved'] as const, 'only open or only resolved alerts')),
    kind: Type.Optional(literals(ALERT_KINDS, `only this kind: ${ALERT_KINDS.join(', ')}`)),
    hours: Type.Optional(Type.Integer({ minimum: 1, maximum: 720, default: 24, description: 'besides the open ones, alerts changed within this many hours (default 24)' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100, description: 'at most this many (default 100)' })),
  },
  { additionalProperties: false },
);

const TestBody = Type.Object(
  { message: Type.Optional(Type.String({ minLength: 1, maxLength: 2000, description: 'text of the test message (default: a fixed sentence)' })) },
  { additionalProperties: false, description: 'no body, or { "message": "..." }' },
);

const TestAnswer = Type.Object({
  alert_id: Type.Integer({ description: 'the test is recorded as an alert of kind test, with its deliveries' }),
  channels: Type.Array(
    Type.Object({
      channel: Type.String(),
      ok: Type.Boolean(),
      answer: Type.String({ description: 'what the channel answered (secrets hidden)' }),
      permanent: Type.Optional(Type.Boolean({ description: 'on failure: true when retrying cannot help (e.g. a revoked webhook)' })),
    }),
  ),
  note: Type.Optional(Type.String()),
});

const isoOrNull = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

function alertView(a: AlertView) {
  return {
    ...a,
    opened_at: isoOrNull(a.opened_at),
    updated_at: isoOrNull(a.updated_at),
    resolved_at: isoOrNull(a.resolved_at),
    last_notified_at: isoOrNull(a.last_notified_at),
    deliveries: a.deliveries.map((d) => ({ ...d, next_attempt_at: isoOrNull(d.next_attempt_at), created_at: isoOrNull(d.created_at), sent_at: isoOrNull(d.sent_at) })),
  };
}

/** Alerts the engine raised, with per-channel delivery state, and a test message through every configured channel. */
export function alertRoutes(app: App, deps: AppDeps): void {
  app.get(
    '/api/alerts',
    {
      schema: {
        summary: 'open alerts, then recent ones, newest first, each with its delivery state per channel',
        tags: ['alerts'],
        querystring: AlertsQuery,
        response: { 200: Type.Object({ alerts: Type.Array(AlertSchema), open: Type.Integer() }), 400: ErrorSchema },
      },
    },
    async (request) => {
      const q = request.query;
      const alerts = await listAlerts(deps.db, { state: q.state, kind: q.kind, recentHours: q.hours ?? 24, limit: q.limit ?? 100 });
      return { alerts: alerts.map(alertView), open: alerts.filter((a) => a.state === 'open').length };
    },
  );

  app.post(
    '/api/alerts/test',
    {
      schema: {
        summary: 'send a test message through every configured channel now and report what each answered (admin)',
        tags: ['alerts'],
        body: TestBody,
        response: { 200: TestAnswer, 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema },
      },
    },
    async (request) => {
      const config: AlertChannelConfig | undefined = deps.alertChannels;
      const set = config ? channelsFromConfig(config) : { channels: [], scrub: (s: string) => s, close() {} };
      try {
        const text = request.body?.message ?? 'Test message from Wombat: this channel receives alerts.';
        const alert = await recordMessageAlert(
          deps.db,
          { key: `test:${Date.now()}`, kind: 'test', severity: 'info', subject: 'Wombat alert channel test', message: text, details: {} },
          'test',
          [],
        );
        const message = messageOf(alert, 'test');
        // Every channel at once, each within its own deadline: a dead one does not hold up the others.
        const results = await Promise.all(
          set.channels.map(async (ch) => {
            const r = await ch.send(message);
            const answer = r.ok ? r.response : r.error;
            await recordDirectDelivery(deps.db, alert.id, ch.name, message, { ok: r.ok, text: answer });
            return { channel: ch.name, ok: r.ok, answer, ...(r.ok ? {} : { permanent: r.permanent }) };
          }),
        );
        return {
          alert_id: alert.id,
          channels: results,
          ...(results.length === 0 ? { note: 'no alert channel configured (SLACK_WEBHOOK_URL, SMTP_URL, ALERT_WEBHOOK_URL): alerts are recorded, not sent' } : {}),
        };
      } finally {
        set.close();
      }
    },
  );
}
