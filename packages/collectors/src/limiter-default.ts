import { createLocalBudgetStore } from './budget-store.ts';
import { createLimiter, type Limiter } from './rate-limit.ts';

let local: Limiter | undefined;

/**
 * The limiter of clients created without one: budgets local to this process,
 * shared by everything in it (as if no database were configured).
 */
export function defaultLimiter(): Limiter {
  local ??= createLimiter({ store: createLocalBudgetStore() });
  return local;
}
