/**
 * Warning and critical levels of the figures operators watch, shared by the
 * dashboard's colours, the metrics and the alerts so that all three agree.
 * Defaults are the operations playbook's: queue length 0-10 normal, 10-50
 * warning, > 50 critical; failure rate < 5 % / 5-10 % / > 10 %; average run time
 * < 300 s / 300-600 s / > 600 s; dead letters < 5 / 5-20 / > 20; live workers per
 * queue >= 2 normal, 1 warning, 0 critical.
 */
export type Level = 'ok' | 'warning' | 'critical';

export interface Threshold {
  warning: number;
  critical: number;
  /** 'above': larger values are worse (queue length); 'below': smaller values are worse (live workers). */
  worse: 'above' | 'below';
}

export const THRESHOLD_NAMES = ['queueDepth', 'failureRatio', 'avgRunSeconds', 'deadLetters', 'liveWorkers'] as const;
export type ThresholdName = (typeof THRESHOLD_NAMES)[number];
export type Thresholds = Record<ThresholdName, Threshold>;

export const DEFAULT_THRESHOLDS: Thresholds = {
  queueDepth: { warning: 10, critical: 50, worse: 'above' },
  failureRatio: { warning: 0.05, critical: 0.1, worse: 'above' },
  avgRunSeconds: { warning: 300, critical: 600, worse: 'above' },
  deadLetters: { warning: 5, critical: 20, worse: 'above' },
  liveWorkers: { warning: 1, critical: 0, worse: 'below' },
};

/**
 * The level of a figure. 'above': warning from `warning` up, critical past
 * `critical` (5 dead letters warn, 20 still warn, 21 are critical).
 * 'below': warning at or under `warning`, critical at or under `critical`.
 */
export function levelOf(value: number, t: Threshold): Level {
  if (t.worse === 'above') {
    if (value > t.critical) return 'critical';
    if (value >= t.warning) return 'warning';
    return 'ok';
  }
  if (value <= t.critical) return 'critical';
  if (value <= t.warning) return 'warning';
  return 'ok';
}
