/**
 * Handler executions from the shared WORKER_EXECUTION_LOG: each start paired with its
 * end (same run, attempt and worker process), or cut short by its process's death.
 */
import { readFileSync } from 'node:fs';
import { readExecutionLog, type ExecutionEvent } from '@wombat/worker';

export interface Execution {
  run: string;
  attempt: number;
  worker: string;
  pid: number;
  start: number;
  end?: number;
  outcome?: 'completed' | 'failed' | 'aborted';
  /** The start and end lines as written. */
  lines: ExecutionEvent[];
}

export function readExecutions(file: string): Execution[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // no worker has written yet
  }
  return pairExecutions(readExecutionLog(text));
}

/** Pairs starts and ends in the order they were written; an end with no open start is kept as an execution of its own. */
export function pairExecutions(events: ExecutionEvent[]): Execution[] {
  const open = new Map<string, Execution[]>();
  const out: Execution[] = [];
  for (const e of events) {
    const key = `${e.run}|${e.attempt}|${e.worker}`;
    if (e.ev === 'start') {
      const x: Execution = { run: e.run, attempt: e.attempt, worker: e.worker, pid: e.pid, start: e.at, lines: [e] };
      out.push(x);
      open.set(key, [...(open.get(key) ?? []), x]);
      continue;
    }
    const x = open.get(key)?.shift();
    if (x) {
      x.end = e.at;
      if (e.outcome) x.outcome = e.outcome;
      x.lines.push(e);
    } else {
      out.push({ run: e.run, attempt: e.attempt, worker: e.worker, pid: e.pid, start: e.at, end: e.at, ...(e.outcome ? { outcome: e.outcome } : {}), lines: [e] });
    }
  }
  return out;
}

/** Executions with no end line, by worker pid. */
export function openExecutions(executions: Execution[]): Map<number, Execution[]> {
  const byPid = new Map<number, Execution[]>();
  for (const x of executions) if (x.end === undefined) byPid.set(x.pid, [...(byPid.get(x.pid) ?? []), x]);
  return byPid;
}

export function byRun(executions: Execution[]): Map<string, Execution[]> {
  const m = new Map<string, Execution[]>();
  for (const x of executions) m.set(x.run, [...(m.get(x.run) ?? []), x]);
  return m;
}
