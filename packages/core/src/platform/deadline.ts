import { DatabaseTimeoutError } from './errors.ts';

export interface DeadlineOptions<T> {
  /** The phase the DatabaseTimeoutError names; default 'call'. */
  phase?: DatabaseTimeoutError['phase'];
  /**
   * Called once if the deadline passes, with the work left behind, before the
   * caller's rejection handlers run: for a caller that must know how the work ends
   * (a write that may still commit) or count what is still unsettled.
   */
  onAbandoned?: (work: Promise<T>) => void;
}

/**
 * Resolves or rejects as `p` does, or rejects with a DatabaseTimeoutError (phase
 * `opts.phase`, default 'call') once `ms` pass. The work behind `p` is abandoned,
 * not stopped: use it where the caller must get an answer (a request, a loop
 * round, a stop) and the work is safe to leave behind (it ends on its own
 * deadline, or rolls back). A deadline that is not a positive finite number means
 * none. The timer is cleared as soon as `p` settles.
 */
export function withDeadline<T>(p: PromiseLike<T>, ms: number, what: string, opts: DeadlineOptions<T> = {}): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) return Promise.resolve(p);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new DatabaseTimeoutError(opts.phase ?? 'call', ms, what));
      opts.onAbandoned?.(Promise.resolve(p));
    }, ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
