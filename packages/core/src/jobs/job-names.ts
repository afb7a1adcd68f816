import { isJobType, JOB_TYPES, type JobType } from './contracts.ts';

/**
 * The names the replaced systems gave Wombat's jobs (their CLIs, job ids and task paths), so an
 * operator's scripts and habits keep working. The one table every command that takes a job name
 * reads (`wombat run`, `trigger`, `runs --job`, `dlq --job`, `schedules create --job`) and the
 * api's `POST /api/tasks/{type}`. Keys are written in the normal form `normalJobName` makes.
 */
export const JOB_ALIASES = {
  'price-crawl': 'crawl-prices',
  'reddit-collection': 'collect-posts',
  symbols: 'collect-symbols',
  prices: 'collect-prices',
} as const satisfies Record<string, JobType>;

/** `_` as `-`, as the replaced systems' job ids were written: `price_crawl` is `price-crawl`. Case counts. */
function normalJobName(name: string): string {
  return name.trim().replaceAll('_', '-');
}

/** The job type `name` means: a job type or an alias, with `-` or `_`; undefined for anything else. */
export function resolveJobName(name: string): JobType | undefined {
  const normal = normalJobName(name);
  if (isJobType(normal)) return normal;
  return Object.hasOwn(JOB_ALIASES, normal) ? JOB_ALIASES[normal as keyof typeof JOB_ALIASES] : undefined;
}

/**
 * A job name used as a filter of the run history: an alias becomes its job type; anything else is
 * kept as given, since the history may hold job types this version no longer has.
 */
export function jobFilterName(name: string): string;
export function jobFilterName(name: string | undefined): string | undefined;
export function jobFilterName(name: string | undefined): string | undefined {
  return name === undefined ? undefined : (resolveJobName(name) ?? name);
}

/** Says what `name` should have been; for commands that refuse an unknown job name. */
export function unknownJobMessage(name: string): string {
  return `"${name}" is not a job type; give one of ${JOB_TYPES.join(', ')} (or a name of the older setup: ${aliasList()})`;
}

/** "price-crawl (crawl-prices), ..." for help texts and errors. */
export function aliasList(): string {
  return Object.entries(JOB_ALIASES)
    .map(([alias, job]) => `${alias} (${job})`)
    .join(', ');
}
