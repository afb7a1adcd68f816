import { DatabaseTimeoutError } from './errors.ts';

/**
 * Resolves or rejects as `p` does, or rejects with a DatabaseTimeoutError ('call')
 * once `ms` pass. The work behind `p` is abandoned, not stopped: use it where the
 * caller must get an answer (a request, a loop round) and the work is safe to
 * leave behind (it ends on its own deadline, or rolls back).
 */
export function withDeadline<T>(p: PromiseLike<T>, ms: number, what: string): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) return Promise.resolve(p);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new DatabaseTimeoutError('call', ms, what)), ms);
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
