import { closeSync, openSync, writeSync } from 'node:fs';

/**
 * An append-only audit of handler executions: one JSON line at every handler start and end, with
 * the run id, the attempt and (at the end) how the handler ended. Written synchronously with
 * O_APPEND, so lines from several worker processes sharing one file never interleave, and a line
 * written before a SIGKILL is on disk. Chaos tests and drills read it back to count what really
 * ran, independently of the run history.
 */
export interface ExecutionLog {
  start(e: { runId: string; attempt: number; job: string }): void;
  end(e: { runId: string; attempt: number; job: string; outcome: 'completed' | 'failed' | 'aborted' }): void;
  close(): void;
}

export interface ExecutionEvent {
  ev: 'start' | 'end';
  run: string;
  attempt: number;
  job: string;
  pid: number;
  worker: string;
  /** Milliseconds since the epoch, this host's clock. */
  at: number;
  outcome?: 'completed' | 'failed' | 'aborted';
}

export function openExecutionLog(file: string, workerId: string): ExecutionLog {
  const fd = openSync(file, 'a');
  let open = true;
  const write = (e: ExecutionEvent) => {
    if (open) writeSync(fd, `${JSON.stringify(e)}\n`);
  };
  return {
    start: (e) => write({ ev: 'start', run: e.runId, attempt: e.attempt, job: e.job, pid: process.pid, worker: workerId, at: Date.now() }),
    end: (e) => write({ ev: 'end', run: e.runId, attempt: e.attempt, job: e.job, pid: process.pid, worker: workerId, at: Date.now(), outcome: e.outcome }),
    close() {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}

/** Parses an execution log's text (a torn last line, from a process killed mid-write, is skipped). */
export function readExecutionLog(text: string): ExecutionEvent[] {
  const out: ExecutionEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as ExecutionEvent);
    } catch {
      // a torn line
    }
  }
  return out;
}
