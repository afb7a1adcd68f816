import type { Logger } from './logger.ts';

export interface StopStep {
  name: string;
  fn: () => Promise<void> | void;
}

export interface Lifecycle {
  /** Registers a step; steps run in reverse order of registration (last started, first stopped). */
  onStop(name: string, fn: StopStep['fn']): void;
  /** Memoized: every caller gets the same promise. Resolves `true` when all steps finished in time. */
  stop(reason: string): Promise<boolean>;
  readonly stopping: boolean;
}

/**
 * Ordered, memoized shutdown with a deadline. Services register, in start order,
 * pools first and intake last, so stop runs intake -> drain -> pools. A step that
 * throws is logged and the next one still runs; when the deadline passes, stop
 * resolves `false` and the caller exits anyway.
 */
export function createLifecycle(opts: { log: Logger; shutdownTimeoutMs: number }): Lifecycle {
  const steps: StopStep[] = [];
  let stopping: Promise<boolean> | undefined;

  async function runSteps(): Promise<void> {
    for (const step of [...steps].reverse()) {
      const started = performance.now();
      try {
        await step.fn();
        opts.log.debug({ step: step.name, ms: Math.round(performance.now() - started) }, 'stopped');
      } catch (err) {
        opts.log.error({ err, step: step.name }, 'stop step failed');
      }
    }
  }

  return {
    onStop(name, fn) {
      steps.push({ name, fn });
    },
    get stopping() {
      return stopping !== undefined;
    },
    stop(reason) {
      if (stopping) return stopping;
      opts.log.info({ reason, deadlineMs: opts.shutdownTimeoutMs }, 'stopping');
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => {
          opts.log.error({ deadlineMs: opts.shutdownTimeoutMs }, 'stop deadline passed');
          resolve(false);
        }, opts.shutdownTimeoutMs);
      });
      stopping = Promise.race([runSteps().then(() => true), deadline]).finally(() => clearTimeout(timer));
      return stopping;
    },
  };
}

/** Longest an exit waits for the log's buffered lines to be written. */
const FLUSH_BEFORE_EXIT_MS = 1000;

/**
 * Exits with `code` once the logger's buffered lines are written (its destination is
 * asynchronous: exiting at once would drop the last lines, "stopped" among them), or
 * after FLUSH_BEFORE_EXIT_MS whatever happens.
 */
export function flushAndExit(log: Logger, proc: Pick<NodeJS.Process, 'exit'>, code: number): void {
  let done = false;
  const exit = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    proc.exit(code);
  };
  const timer = setTimeout(exit, FLUSH_BEFORE_EXIT_MS);
  try {
    if (log.flush) log.flush(() => exit());
    else exit();
  } catch {
    exit();
  }
}

/**
 * Wires SIGINT, SIGTERM and SIGHUP to `lifecycle.stop`. The first signal stops cleanly; a
 * second one, or the deadline, exits at once with status 1.
 */
export function handleSignals(
  lifecycle: Lifecycle,
  proc: Pick<NodeJS.Process, 'on' | 'exit'>,
  log: Logger,
  repeatWindowMs = 1000,
): void {
  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // A signal often arrives twice at once: from the terminal's process group and
    // forwarded by npm. Only a repeat a second later is a person insisting.
    if (lifecycle.stopping && Date.now() - firstSignalAt < repeatWindowMs) return;
    if (lifecycle.stopping) {
      log.warn({ signal }, 'second signal, exiting now');
      flushAndExit(log, proc, 1);
      return;
    }
    firstSignalAt = Date.now();
    void lifecycle.stop(signal).then((clean) => {
      log.info({ clean }, 'stopped');
      flushAndExit(log, proc, clean ? 0 : 1);
    });
  };
  proc.on('SIGINT', onSignal);
  proc.on('SIGTERM', onSignal);
  // A closed terminal (npm start, a person running a service by hand) stops cleanly too.
  proc.on('SIGHUP', onSignal);
}
