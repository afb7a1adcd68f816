export { buildApp } from './app.ts';
export type { App, AppDeps } from './deps.ts';
export { loadConfig, apiConfigSchema, type ApiConfig } from './config.ts';
export { startApi, type RunningApi } from './server.ts';
// For the `wombat` CLI: the same stores and JSON shapes as the api's answers.
export { apiDb, childTally, deadLetterIds, getRun, listDeadLetters, listRuns, type ApiRun, type ChildTally } from './runs-store.ts';
export { runView, taskView } from './views.ts';
export { engineView, nextRunOf, scheduleView } from './schedule-views.ts';
