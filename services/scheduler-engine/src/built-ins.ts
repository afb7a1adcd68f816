import { SCHEDULE_DEFAULTS, type ScheduleDefinition } from '@wombat/core';
import type { EngineConfig } from './config.ts';

/**
 * The schedules Wombat always has. The engine upserts them by name at start, so
 * the api lists them with the rest; their definitions follow this configuration
 * (edits through the api are refused), an operator may pause and resume them.
 * Adding one is a few lines here.
 */
export function builtInSchedules(c: EngineConfig): ScheduleDefinition[] {
  const base = {
    params: {},
    overlap: 'skip',
    missed: 'once',
    catchupWindowSeconds: SCHEDULE_DEFAULTS.catchupWindowSeconds,
    catchupMax: 1,
    jitterSeconds: 0,
    timeoutSeconds: null,
    maxRetries: null,
    retryDelaySeconds: null,
    retryBackoff: null,
    status: 'active',
    pausedReason: null,
  } as const satisfies Partial<ScheduleDefinition>;
  const pad = (n: number) => String(n).padStart(2, '0');
  return [
    { ...base, name: 'collect-symbols', job: 'collect-symbols', trigger: { kind: 'times', times: [c.symbolsScheduleTime] }, timezone: c.timezone },
    { ...base, name: 'collect-prices', job: 'collect-prices', trigger: { kind: 'times', times: [c.pricesScheduleTime] }, timezone: c.timezone },
    {
      ...base,
      name: 'daily-candles',
      job: 'collect-prices',
      trigger: { kind: 'times', times: [`${pad(c.schedulerHour)}:${pad(c.schedulerMinute)}`] },
      timezone: 'UTC',
      params: { exchanges: ['upbit'], symbols: c.schedulerSymbols, timeframes: c.schedulerTimeframes },
    },
  ];
}
