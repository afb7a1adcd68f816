import { isDatabaseUnavailable } from './errors.ts';
import type { Logger } from './logger.ts';

/**
 * Periodic loops that can tell they are stuck. A round that overruns its deadline
 * is logged and abandoned (its signal aborts, the next round may start). A loop
 * that has completed no round for longer than `stallMs`, and in that time had a
 * round overrun or fail for a reason other than an unreachable database, calls
 * `onStall` once; services wire it to "stop cleanly and exit non-zero" so that
 * systemd restarts the process. Rounds failing fast because PostgreSQL is down do
 * not count: a restart cannot bring the database back, and the loop resumes by
 * itself when it returns.
 *
 * Rounds never overlap: while one is in flight (and within its deadline) the next
 * tick is skipped. An abandoned round keeps running in the background until its own
 * database deadlines end it; `health()` counts those.
 */
export interface LoopRoundOptions {
  /** A round running longer is abandoned. */
  roundTimeoutMs: number;
}

export interface LoopHealth {
  name: string;
  ok: boolean;
  /** Milliseconds since the last round that completed; undefined before the first. */
  last_ok_ms_ago?: number;
  /** Milliseconds this loop has been failing (rounds throwing or overrunning); 0 when healthy. */
  failing_ms: number;
  overruns: number;
  /** Abandoned rounds that have not settled yet. */
  abandoned_unsettled: number;
}

export interface LoopSupervisor {
  /** Runs `fn` every `intervalMs` (first round after one interval), with the round deadline. */
  every(name: string, intervalMs: number, fn: (signal: AbortSignal) => Promise<unknown>, opts: LoopRoundOptions): void;
  /**
   * One round of an event-driven loop (the engine's publish pass): resolves when `fn`
   * settles or, at the deadline, when it is abandoned (`'abandoned'`); never rejects.
   */
  round(name: string, fn: (signal: AbortSignal) => Promise<unknown>, opts: LoopRoundOptions): Promise<'ok' | 'failed' | 'abandoned'>;
  health(): LoopHealth[];
  /** Stops the timers; rounds in flight are left to finish (the caller awaits what it needs). */
  stop(): void;
}

export interface LoopSupervisorOptions {
  log: Logger;
  /** A loop failing for longer than this is stalled (0: never). */
  stallMs: number;
  onStall(info: { loop: string; failingMs: number }): void;
  /** How often stalls are looked for; default 1 s. */
  checkEveryMs?: number;
  now?: () => number;
}

interface LoopState {
  name: string;
  lastOkAt?: number;
  failingSince?: number;
  /** Since the last completed round, one overran or failed for a reason a restart might fix. */
  bad: boolean;
  overruns: number;
  abandoned: number;
  inFlightSince?: number;
  roundTimeoutMs: number;
}

export function createLoopSupervisor(opts: LoopSupervisorOptions): LoopSupervisor {
  const log = opts.log.child({ component: 'loops' });
  const now = opts.now ?? Date.now;
  const loops = new Map<string, LoopState>();
  const timers: NodeJS.Timeout[] = [];
  let stopped = false;
  let stalled = false;

  function state(name: string, roundTimeoutMs: number): LoopState {
    let s = loops.get(name);
    if (!s) {
      s = { name, bad: false, overruns: 0, abandoned: 0, roundTimeoutMs };
      loops.set(name, s);
    }
    s.roundTimeoutMs = roundTimeoutMs;
    return s;
  }

  function failingMs(s: LoopState, t: number): number {
    // A round in flight past its deadline counts as failing from when it started.
    const since = s.failingSince ?? (s.inFlightSince !== undefined && t - s.inFlightSince > s.roundTimeoutMs ? s.inFlightSince : undefined);
    return since === undefined ? 0 : t - since;
  }

  async function round(name: string, fn: (signal: AbortSignal) => Promise<unknown>, o: LoopRoundOptions): Promise<'ok' | 'failed' | 'abandoned'> {
    const s = state(name, o.roundTimeoutMs);
    const started = now();
    s.inFlightSince = started;
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const work = Promise.resolve()
      .then(() => fn(ac.signal))
      .then(
        () => 'ok' as const,
        (err: unknown) => ({ err }),
      );
    const deadline = new Promise<'abandoned'>((resolve) => (timer = setTimeout(() => resolve('abandoned'), o.roundTimeoutMs)));
    const outcome = await Promise.race([work, deadline]);
    clearTimeout(timer);
    s.inFlightSince = undefined;
    if (outcome === 'ok') {
      if (s.failingSince !== undefined) log.info({ loop: name, failedForMs: now() - s.failingSince }, 'loop recovered');
      s.lastOkAt = now();
      s.failingSince = undefined;
      s.bad = false;
      return 'ok';
    }
    s.failingSince ??= started;
    if (outcome === 'abandoned' || !isDatabaseUnavailable(outcome.err)) s.bad = true;
    if (outcome === 'abandoned') {
      s.overruns++;
      s.abandoned++;
      ac.abort(new Error(`${name} round abandoned after ${o.roundTimeoutMs} ms`));
      log.error({ loop: name, roundTimeoutMs: o.roundTimeoutMs, abandonedUnsettled: s.abandoned }, 'loop round overran its deadline; abandoned');
      void work.then((late) => {
        s.abandoned--;
        if (late !== 'ok') log.warn({ loop: name, err: late.err }, 'abandoned loop round ended with an error');
      });
      return 'abandoned';
    }
    log.warn({ loop: name, err: outcome.err, failingMs: now() - s.failingSince }, `${name} failed; will retry`);
    return 'failed';
  }

  function check(): void {
    if (stopped || stalled || !(opts.stallMs > 0)) return;
    const t = now();
    for (const s of loops.values()) {
      const ms = failingMs(s, t);
      const overrunning = s.inFlightSince !== undefined && t - s.inFlightSince > s.roundTimeoutMs;
      if (ms > opts.stallMs && (s.bad || overrunning)) {
        stalled = true;
        log.fatal({ loop: s.name, failingMs: ms, stallMs: opts.stallMs }, 'loop cannot make progress; exiting so the service manager restarts the process');
        opts.onStall({ loop: s.name, failingMs: ms });
        return;
      }
    }
  }

  const checker = setInterval(check, opts.checkEveryMs ?? 1000);
  checker.unref?.();
  timers.push(checker);

  return {
    every(name, intervalMs, fn, o) {
      state(name, o.roundTimeoutMs);
      let busy = false;
      const t = setInterval(() => {
        if (busy || stopped) return;
        busy = true;
        void round(name, fn, o).finally(() => (busy = false));
      }, intervalMs);
      timers.push(t);
    },
    round,
    health() {
      const t = now();
      return [...loops.values()].map((s) => {
        const failing = failingMs(s, t);
        return {
          name: s.name,
          ok: failing === 0,
          ...(s.lastOkAt !== undefined ? { last_ok_ms_ago: t - s.lastOkAt } : {}),
          failing_ms: failing,
          overruns: s.overruns,
          abandoned_unsettled: s.abandoned,
        };
      });
    },
    stop() {
      stopped = true;
      for (const t of timers) clearInterval(t);
    },
  };
}
