export * from './types.ts';
export * from './time-zone.ts';
export * from './occurrences.ts';
export * from './schema.ts';
export * from './validate.ts';
export * from './catch-up.ts';
export * from './store.ts';
