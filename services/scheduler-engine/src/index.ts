export { loadConfig, engineSchema, type EngineConfig } from './config.ts';
export { builtInSchedules, disabledBuiltIns, type DisabledBuiltIn } from './built-ins.ts';
export { createEngine, type Engine, type EngineDeps, type EngineOptions } from './engine.ts';
export { publishBatch, type Decision, type PublishedOccurrence } from './publish.ts';
export { purgeFinishedRuns } from './housekeeping.ts';
export { engineOptions, startService } from './service.ts';
export { dueOccurrences, MAX_DUE_PER_PASS } from './due.ts';
