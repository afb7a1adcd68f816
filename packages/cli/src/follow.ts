import { setTimeout as sleep } from 'node:timers/promises';
import { apiDb, getRun, runView, type ApiRun } from '@wombat/api';
import cliProgress from 'cli-progress';
import { EXIT, notFoundError, usage, type CliContext } from './context.ts';
import { duration, errorMessage, fields, json, shortTime } from './output.ts';
import { FINISHED_STATES, type CliRunState } from './queries.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const POLL_MS = 250;

export function checkRunId(id: string): string {
  if (!UUID.test(id)) throw usage(`"${id}" is not a run id: give the full uuid, e.g. 3f1c2a9e-8b4d-4c1e-9f2a-5d6e7f8a9b0c (wombat runs lists them)`);
  return id.toLowerCase();
}

export async function loadRun(ctx: CliContext, id: string): Promise<ApiRun> {
  const { db } = await ctx.database();
  const run = await getRun(apiDb(db), id);
  if (!run) throw notFoundError(`no run with id ${id}; wombat runs lists them`);
  return run;
}

export const isFinished = (state: string) => (FINISHED_STATES as readonly string[]).includes(state as CliRunState);

/** A run's outcome as an exit code: 0 only when it completed. */
export const outcomeCode = (state: string) => (state === 'completed' ? EXIT.ok : EXIT.failed);

export function runDetails(run: ApiRun): string {
  const v = runView(run);
  return fields([
    ['id', v.id],
    ['job', v.job],
    ['trigger', v.schedule_id === null ? v.trigger : `${v.trigger} (schedule ${v.schedule_id})`],
    ['state', v.reason ? `${v.state}: ${v.reason}` : v.state],
    ['progress', `${Math.round(v.progress * 100)}%${v.progress_message ? ` ${v.progress_message}` : ''}`],
    ['attempts', v.attempts],
    ['params', JSON.stringify(v.params)],
    ['scheduled for', shortTime(v.scheduled_for)],
    ['created', shortTime(v.created_at)],
    ['started', v.started_at === null ? null : `${shortTime(v.started_at)} (lateness ${duration(v.start_lateness_ms)})`],
    ['finished', v.finished_at === null ? null : `${shortTime(v.finished_at)} (took ${duration(v.duration_ms)})`],
    ['result', v.result === null ? null : JSON.stringify(v.result)],
    ['error', errorMessage(v.error)],
    ['retry of', v.retry_of],
    ['requeued as', v.requeued_as],
  ]);
}

/**
 * Follows a run until it finishes: a progress bar on a terminal (stderr), a line
 * per state change otherwise. Resolves with the finished row.
 */
export async function followRun(ctx: CliContext, id: string): Promise<ApiRun> {
  const bar = ctx.errIsTty && !ctx.opts.json
    ? new cliProgress.SingleBar({ format: '{bar} {percentage}% | {state} {message}', stream: ctx.errStream as NodeJS.WriteStream, hideCursor: true }, cliProgress.Presets.shades_classic)
    : undefined;
  let run = await loadRun(ctx, id);
  bar?.start(100, 0, { state: run.state, message: '' });
  let lastState = '';
  try {
    for (;;) {
      if (bar) bar.update(Math.round(run.progress * 100), { state: run.state, message: run.progress_message ?? '' });
      else if (run.state !== lastState && !ctx.opts.json) ctx.err(`${run.id} ${run.state}${run.progress_message ? ` ${run.progress_message}` : ''}`);
      lastState = run.state;
      if (isFinished(run.state)) return run;
      await sleep(POLL_MS, undefined, { signal: ctx.signal });
      run = await loadRun(ctx, id);
    }
  } finally {
    bar?.stop();
  }
}

/** Prints a finished run (JSON or details) and returns its exit code. */
export function reportOutcome(ctx: CliContext, run: ApiRun): number {
  if (ctx.opts.json) ctx.out(json(runView(run)));
  else ctx.out(runDetails(run));
  return outcomeCode(run.state);
}
