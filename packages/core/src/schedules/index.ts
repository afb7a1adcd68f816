/**
 * Schedules: definitions and their validation, the occurrence maths (pure, `now` as an
 * argument), catch-up, and the engines that publish them. Owns wombat.schedules (written
 * only by store.ts: definitions and the engine's next/last bookkeeping) and
 * wombat.engines (written only by engines.ts). Import as `@wombat/core/schedules`.
 */
export * from './tables.ts';
export * from './types.ts';
export * from './time-zone.ts';
export * from './occurrences.ts';
export * from './schema.ts';
export * from './validate.ts';
export * from './catch-up.ts';
export * from './dependency-period.ts';
export * from './dependency-graph.ts';
export * from './store.ts';
export * from './engines.ts';
