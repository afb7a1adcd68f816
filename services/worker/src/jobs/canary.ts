import { setTimeout as sleep } from 'node:timers/promises';
import { AppError, PermanentError } from '@wombat/core/platform';
import type { JobContext } from './types.ts';

/**
 * A canary operators and tests can steer: sleep `sleep_ms` (aborted by a cancel,
 * the timeout or a lost claim like any job), then fail if asked: `fail: true` is
 * a retryable error (the job's retries apply), `fail: "permanent"` is not retried.
 */
export async function canary(ctx: JobContext<'canary'>): Promise<unknown> {
  const { sleep_ms: sleepMs = 0, fail } = ctx.params;
  if (sleepMs > 0) await sleep(sleepMs, undefined, { signal: ctx.signal });
  if (fail === 'permanent') throw new PermanentError('canary_failed', 'the canary was asked to fail permanently (fail: "permanent")');
  if (fail === true) throw new AppError('canary_failed', `the canary was asked to fail (fail: true), attempt ${ctx.attempt}`);
  return { sleptMs: sleepMs, attempt: ctx.attempt, ...(ctx.params.period ? { period: ctx.params.period } : {}) };
}
