export { createWorker, type Worker, type WorkerOptions } from './worker.ts';
export { loadConfig, queueSettings, workerConfigSchema, defaultQueueSettings, type WorkerConfig, type QueueSettings } from './config.ts';
export { createHistoryWriter, type HistoryWriter, type RunUpdate } from './history.ts';
export type { Candle, CollectorsPort, CrawlsPort, CrawlOutcome } from './collectors-port.ts';
export type { JobContext, JobHandler, JobHandlers } from './jobs/types.ts';
export { runBacktest, type BacktestResult } from './backtest/run.ts';
export { defaultHandlers } from './jobs/handlers.ts';
export { openExecutionLog, readExecutionLog, type ExecutionEvent, type ExecutionLog } from './execution-log.ts';
