/**
 * How a back-off delay is spread below its ceiling:
 * - `none`: the ceiling itself. For a single retrier (one engine's schedule, one
 *   process's write buffer) whose retries cannot pile up on anyone else's.
 * - `full`: uniform in [0, ceiling). Spreads a crowd of retriers the most; the
 *   mean is half the ceiling, and a retry may come almost at once.
 * - `equal`: uniform in [ceiling / 2, ceiling). Half fixed, half random: still
 *   spreads a crowd, but never retries much sooner than the exponential step.
 */
export type BackoffJitter = 'none' | 'full' | 'equal';

export interface BackoffOptions {
  /** The ceiling of the first retry's delay (attempt 1); doubles each attempt. */
  baseMs: number;
  /** Ceilings stop growing here: no delay is ever longer (it wins over a larger baseMs). */
  maxMs: number;
  jitter: BackoffJitter;
  /** A number in [0, 1), as Math.random (the default); tests pass their own. */
  random?: () => number;
}

/**
 * The delay before retry number `attempt` (1 for the first retry): exponential
 * with a cap, then jittered below that ceiling as `jitter` says.
 *
 *   ceiling(attempt) = min(maxMs, baseMs * 2^(attempt - 1))
 *
 * The result is in [0, maxMs] whatever the attempt (no overflow for large ones).
 * Bad arguments throw a RangeError that names the argument.
 */
export function backoffMs(attempt: number, opts: BackoffOptions): number {
  if (!Number.isInteger(attempt) || attempt < 1) throw new RangeError(`back-off attempt must be an integer of at least 1, not ${attempt}`);
  if (!(opts.baseMs >= 0) || !Number.isFinite(opts.baseMs)) throw new RangeError(`back-off baseMs must be a finite number of at least 0, not ${opts.baseMs}`);
  if (!(opts.maxMs >= 0) || !Number.isFinite(opts.maxMs)) throw new RangeError(`back-off maxMs must be a finite number of at least 0, not ${opts.maxMs}`);
  if (opts.jitter !== 'none' && opts.jitter !== 'full' && opts.jitter !== 'equal') {
    throw new RangeError(`back-off jitter must be 'none', 'full' or 'equal', not ${String(opts.jitter)}`);
  }
  // The exponent is bounded so that a zero baseMs never meets an infinite power (0 * Infinity is NaN).
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(attempt - 1, 1000));
  if (opts.jitter === 'none') return ceiling;
  const r = (opts.random ?? Math.random)();
  if (!(r >= 0 && r < 1)) throw new RangeError(`back-off random() must return a number in [0, 1), not ${r}`);
  return opts.jitter === 'full' ? r * ceiling : ceiling / 2 + (r * ceiling) / 2;
}
