import { nextRunOf, scheduleView } from '@wombat/api';
import { ValidationError } from '@wombat/core/platform';
import {
  deleteSchedule,
  describeTrigger,
  insertSchedule,
  listSchedules,
  nextOccurrences,
  setScheduleStatus,
  updateSchedule,
  validateScheduleInput,
  type Schedule,
} from '@wombat/core/schedules';
import type { Command } from 'commander';
import { EXIT, usage, type Act } from '../context.ts';
import { fields, json, shortTime, table } from '../output.ts';
import { addDefinitionOptions, definitionBody, resolveSchedule, type DefinitionFlags } from './schedule-input.ts';

const MAX_PREVIEW = 100;

function countOf(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PREVIEW) throw usage(`--count must be a whole number from 1 to ${MAX_PREVIEW}, not "${v}"`);
  return n;
}

function afterOf(v: string | undefined): Date {
  if (v === undefined) return new Date();
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw usage(`--after must be an ISO 8601 instant like 2026-01-01T00:00:00Z, not "${v}"`);
  return d;
}

function scheduleLines(s: Schedule): string {
  const v = scheduleView(s);
  return fields([
    ['id', v.id],
    ['name', `${v.name}${v.built_in ? ' (built in)' : ''}`],
    ['job', v.job],
    ['trigger', `${v.trigger} (${v.timezone})`],
    ['status', v.status === 'paused' && v.paused_reason ? `paused: ${v.paused_reason}` : v.status],
    ['params', JSON.stringify(v.params)],
    ['overlap', v.overlap],
    ['missed', `${v.missed} (window ${v.catchup_window_seconds}s, at most ${v.catchup_max})`],
    ['jitter', `${v.jitter_seconds}s`],
    ['timeout', v.timeout_seconds === null ? 'job default' : `${v.timeout_seconds}s`],
    ['retries', v.max_retries === null ? 'job default' : v.max_retries],
    ['waits for', v.after.length === 0 ? null : `${v.after.join(', ')} (at most ${v.wait_for}s)`],
    ['next run', shortTime(nextRunOf(s, new Date()))],
    ['last run', v.last_run_at === null ? null : `${shortTime(v.last_run_at)} (${v.last_run_id})`],
    ['version', v.version],
  ]);
}

export function registerSchedules(program: Command, act: Act): void {
  const schedules = program
    .command('schedules')
    .description('list, show, create, edit, pause, resume, delete and preview schedules (checked by the same schema as the api)');

  schedules
    .command('list', { isDefault: true })
    .description('every schedule with its trigger, status and next run')
    .action(
      act(async (ctx) => {
        const { db } = await ctx.database();
        const all = await listSchedules(db);
        const now = new Date();
        if (ctx.opts.json) ctx.out(json({ schedules: all.map(scheduleView) }));
        else {
          ctx.out(
            table(
              ['id', 'name', 'job', 'trigger', 'timezone', 'status', 'next run', 'last run'],
              all.map((s) => [s.id, `${s.name}${s.builtIn ? '*' : ''}`, s.job, describeTrigger(s), s.timezone, s.status, shortTime(nextRunOf(s, now)), shortTime(s.lastRunAt)]),
            ),
          );
          if (all.some((s) => s.builtIn)) ctx.out('* built in: defined by the engine\'s configuration; pause and resume only');
        }
      }),
    );

  schedules
    .command('show <schedule>')
    .description('one schedule (by id or name) with its next occurrences')
    .option('--count <n>', 'how many next occurrences', '5')
    .action(
      act(async (ctx, ref: string, opts: { count: string }) => {
        const { db } = await ctx.database();
        const s = await resolveSchedule(db, ref);
        const next = nextOccurrences(s, new Date(), countOf(opts.count));
        if (ctx.opts.json) ctx.out(json({ ...scheduleView(s), next_occurrences: next.map((d) => d.toISOString()) }));
        else ctx.out(`${scheduleLines(s)}\n\nnext occurrences:\n${next.map((d) => `  ${d.toISOString()}`).join('\n')}`);
      }),
    );

  addDefinitionOptions(
    schedules
      .command('create')
      .description('create a schedule; a running engine picks it up without a restart')
      .addHelpText('after', `
Required: --name, --job and one of --cron, --every, --times.
Example:
  wombat schedules create --name hourly-btc --job fetch-candles --every 1h \\
    --params '{"exchange":"upbit","symbol":"KRW-BTC","timeframe":"1H"}'`),
  ).action(
    act(async (ctx, flags: DefinitionFlags) => {
      const check = validateScheduleInput(definitionBody(flags), { defaultTimezone: ctx.config().timezone });
      if (!check.ok) throw new ValidationError(check.problems);
      const { db } = await ctx.database();
      const created = await insertSchedule(db, check.value);
      ctx.out(ctx.opts.json ? json(scheduleView(created)) : `created schedule ${created.id} (${created.name}): ${describeTrigger(created)} ${created.timezone}`);
    }),
  );

  addDefinitionOptions(
    schedules
      .command('edit <schedule>')
      .description('change some fields of a schedule (by id or name); fields not given stay as they are')
      .option('--active', 'make it active (resume)'),
  ).action(
    act(async (ctx, ref: string, flags: DefinitionFlags & { active?: boolean }) => {
      const body = definitionBody(flags);
      if (flags.active) body.status = 'active';
      if (Object.keys(body).length === 0) throw usage('edit: give at least one field to change, e.g. --cron "0 3 * * *" (see wombat schedules edit --help)');
      const check = validateScheduleInput(body, { partial: true });
      if (!check.ok) throw new ValidationError(check.problems);
      const { db } = await ctx.database();
      const s = await resolveSchedule(db, ref);
      const updated = (await updateSchedule(db, s.id, check.value))!;
      ctx.out(ctx.opts.json ? json(scheduleView(updated)) : `updated schedule ${updated.id} (${updated.name}), version ${updated.version}`);
    }),
  );

  schedules
    .command('pause <schedule>')
    .description('pause a schedule (built-in ones too); occurrences while paused are not run')
    .option('--reason <text>', 'why, shown in the status')
    .action(
      act(async (ctx, ref: string, opts: { reason?: string }) => {
        if (opts.reason !== undefined && opts.reason.length > 500) throw usage('--reason must be at most 500 characters');
        const { db } = await ctx.database();
        const s = await resolveSchedule(db, ref);
        const paused = (await setScheduleStatus(db, s.id, 'paused', opts.reason ?? null))!;
        ctx.out(ctx.opts.json ? json(scheduleView(paused)) : `paused schedule ${paused.id} (${paused.name})`);
      }),
    );

  schedules
    .command('resume <schedule>')
    .description('resume a paused schedule')
    .action(
      act(async (ctx, ref: string) => {
        const { db } = await ctx.database();
        const s = await resolveSchedule(db, ref);
        const resumed = (await setScheduleStatus(db, s.id, 'active'))!;
        ctx.out(ctx.opts.json ? json(scheduleView(resumed)) : `resumed schedule ${resumed.id} (${resumed.name}); next run ${shortTime(nextRunOf(resumed, new Date()))}`);
      }),
    );

  schedules
    .command('delete <schedule>')
    .description('delete a schedule (its runs stay in the history); built-in schedules cannot be deleted')
    .action(
      act(async (ctx, ref: string) => {
        const { db } = await ctx.database();
        const s = await resolveSchedule(db, ref);
        await deleteSchedule(db, s.id);
        ctx.out(ctx.opts.json ? json({ deleted: s.id, name: s.name }) : `deleted schedule ${s.id} (${s.name})`);
      }),
    );

  addDefinitionOptions(
    schedules
      .command('preview [schedule]')
      .description('the next occurrences of a stored schedule, or of a definition given by flags before saving it (the engine\'s maths)')
      .option('--count <n>', `how many occurrences (1-${MAX_PREVIEW})`, '10')
      .option('--after <instant>', 'occurrences strictly after this ISO 8601 instant (default now)'),
  ).action(
    act(async (ctx, ref: string | undefined, flags: DefinitionFlags & { count: string; after?: string }) => {
      const count = countOf(flags.count);
      const after = afterOf(flags.after);
      let def: Pick<Schedule, 'trigger' | 'timezone'>;
      if (ref !== undefined) {
        const { db } = await ctx.database();
        def = await resolveSchedule(db, ref);
      } else {
        // Only the trigger matters: name and job default so a half-written definition can be tried.
        const check = validateScheduleInput({ name: 'preview', job: 'canary', ...definitionBody(flags) }, { defaultTimezone: ctx.config().timezone });
        if (!check.ok) throw new ValidationError(check.problems);
        def = check.value;
      }
      const occurrences = nextOccurrences(def, after, count).map((d) => d.toISOString());
      if (ctx.opts.json) ctx.out(json({ trigger: describeTrigger(def), timezone: def.timezone, occurrences }));
      else ctx.out(`${describeTrigger(def)} (${def.timezone})\n${occurrences.map((o) => `  ${o}`).join('\n')}`);
      return EXIT.ok;
    }),
  );
}
