export { buildApp, type App, type AppDeps } from './app.ts';
export { loadConfig, apiConfigSchema, type ApiConfig } from './config.ts';
export { startApi, type RunningApi } from './server.ts';
