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
 * itself when it returns. Unless a new connection, opened for the purpose
 * (`probe`), gets an answer: then the database is there and it is this process's
 * pool that is stuck (every connection held, none coming back), which a restart
 * does fix.
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
  /**
   * Whether the database answers a connection of its own, outside the process's
   * pools; asked once a loop has failed `stallMs` as if the database were unreachable.
   */
  probe?: () => Promise<boolean>;
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
  /** A probe found the database unreachable during this failing spell (said once). */
  probeWarned?: boolean;
}

/** At most one probe this often, while a loop fails as if the database were unreachable. */
const PROBE_EVERY_MS = 10_000;

export function createLoopSupervisor(opts: LoopSupervisorOptions): LoopSupervisor {
  const log = opts.log.child({ component: 'loops' });
  const now = opts.now ?? Date.now;
  const loops = new Map<string, LoopState>();
  const timers: NodeJS.Timeout[] = [];
  let stopped = false;
  let stalled = false;
  let probing = false;
  let lastProbeAt = -Infinity;

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
      s.probeWarned = false;
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

  function stall(s: LoopState, ms: number, why: string): void {
    stalled = true;
    log.fatal({ loop: s.name, failingMs: ms, stallMs: opts.stallMs }, `${why}; exiting so the service manager restarts the process`);
    opts.onStall({ loop: s.name, failingMs: ms });
  }

  /** The database looked unreachable to `s` for stallMs: does it answer a connection of its own? */
  function probeFor(s: LoopState): void {
    if (probing || !opts.probe || now() - lastProbeAt < PROBE_EVERY_MS) return;
    probing = true;
    lastProbeAt = now();
    // Not awaited: the check goes on while the probe runs. A probe that fails counts as no answer.
    void opts
      .probe()
      .catch(() => false)
      .then((answers) => {
        const ms = failingMs(s, now());
        if (answers && !stopped && !stalled && ms > opts.stallMs) {
          stall(s, ms, 'loop fails as if the database were unreachable, yet a new connection to it gets an answer: this process\'s pool is stuck');
        } else if (!answers && !s.probeWarned) {
          s.probeWarned = true;
          log.warn({ loop: s.name, failingMs: ms }, 'database unreachable from a new connection too; waiting for it');
        }
      })
      .finally(() => (probing = false));
  }

  function check(): void {
    if (stopped || stalled || !(opts.stallMs > 0)) return;
    const t = now();
    for (const s of loops.values()) {
      const ms = failingMs(s, t);
      if (ms <= opts.stallMs) continue;
      const overrunning = s.inFlightSince !== undefined && t - s.inFlightSince > s.roundTimeoutMs;
      if (s.bad || overrunning) return stall(s, ms, 'loop cannot make progress');
      probeFor(s);
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
