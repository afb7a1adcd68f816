import { setTimeout as sleep } from 'node:timers/promises';
import { apiDb, childTally, getRun, runView, type ApiRun, type ChildTally } from '@wombat/api';
import cliProgress from 'cli-progress';
import { EXIT, notFoundError, usage, type CliContext } from './context.ts';
import { duration, errorMessage, fields, json, shortTime } from './output.ts';
import { FINISHED_STATES, RUN_STATES, type CliRunState } from './queries.ts';

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

/** A run and, for a fan-out, its children by state. */
export interface RunWithChildren {
  run: ApiRun;
  children: ChildTally | null;
}

export async function loadRunWithChildren(ctx: CliContext, id: string): Promise<RunWithChildren> {
  const run = await loadRun(ctx, id);
  const { db } = await ctx.database();
  return { run, children: await childTally(apiDb(db), id) };
}

/**
 * A run's outcome as an exit code: 0 only when it completed and so did every child
 * of a fan-out (a collect-prices whose fetch-candles all failed collected nothing).
 */
export function outcomeCode({ run, children }: RunWithChildren): number {
  if (run.state !== 'completed') return EXIT.failed;
  if (children && (children.by_state.completed ?? 0) < children.total) return EXIT.failed;
  return EXIT.ok;
}

/** "6: 5 completed, 1 failed" */
export function tallyText(children: ChildTally): string {
  const parts = RUN_STATES.filter((state) => children.by_state[state]).map((state) => `${children.by_state[state]} ${state}`);
  return `${children.total}: ${parts.join(', ')}`;
}

export function runDetails(run: ApiRun, children: ChildTally | null = null): string {
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
    ...(children ? [['children', tallyText(children)] as [string, string]] : []),
  ]);
}

/**
 * Follows a run until it finishes and, for a fan-out, until each of its children
 * has: a progress bar on a terminal (stderr), a line per change otherwise.
 * Resolves with the finished run and its children.
 */
export async function followRun(ctx: CliContext, id: string): Promise<RunWithChildren> {
  const bar = ctx.errIsTty && !ctx.opts.json
    ? new cliProgress.SingleBar({ format: '{bar} {percentage}% | {state} {message}', stream: ctx.errStream as NodeJS.WriteStream, hideCursor: true }, cliProgress.Presets.shades_classic)
    : undefined;
  let current = await loadRunWithChildren(ctx, id);
  bar?.start(100, 0, { state: current.run.state, message: '' });
  let last = '';
  try {
    for (;;) {
      const { run, children } = current;
      const waitingForChildren = isFinished(run.state) && children !== null && children.active > 0;
      const state = children ? `${run.state}, ${waitingForChildren ? 'waiting for children' : 'children'}` : run.state;
      const message = children ? tallyText(children) : (run.progress_message ?? '');
      // A fan-out's own progress ends when its children are created; theirs is the rest of the work.
      const progress = children ? (children.total - children.active) / children.total : run.progress;
      if (bar) bar.update(Math.round(progress * 100), { state, message });
      else if (`${state} ${message}` !== last && !ctx.opts.json) ctx.err(`${run.id} ${state}${message ? ` ${message}` : ''}`);
      last = `${state} ${message}`;
      if (isFinished(run.state) && !waitingForChildren) return current;
      await sleep(POLL_MS, undefined, { signal: ctx.signal });
      current = await loadRunWithChildren(ctx, id);
    }
  } finally {
    bar?.stop();
  }
}

/** Prints a finished run (JSON or details) with its children's tally and returns its exit code. */
export function reportOutcome(ctx: CliContext, finished: RunWithChildren): number {
  if (ctx.opts.json) ctx.out(json({ ...runView(finished.run), children: finished.children }));
  else ctx.out(runDetails(finished.run, finished.children));
  return outcomeCode(finished);
}
