/**
 * Workers: the registry of worker processes (wombat.workers), one heartbeat row each,
 * and the liveness rule the reconciler, the engines' table and the api judge by.
 * registry.ts is the table's only writer. Import as `@wombat/core/workers`.
 */
export * from './tables.ts';
export * from './registry.ts';
