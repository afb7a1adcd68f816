/**
 * The job catalogue: the job types every service agrees on, their parameter schemas
 * and checks, defaults, liveness constants, and the pg-boss queue of each. Import as
 * `@wombat/core/jobs`.
 *
 * An entry of its own rather than a part of runs: it owns no table, and more than the
 * runs need it. Schedules validate their params against it, the api and the CLI
 * validate requests with it, and the collectors take their parameter types from it
 * (exchanges, timeframes, storages) without wanting anything of the run lifecycle.
 * It sits just above the platform, below every domain that names a job.
 */
export * from './contracts.ts';
export * from './queues.ts';
export * from './job-names.ts';
export * from './periods.ts';
