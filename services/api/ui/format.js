// How the pages write times, durations, sizes and states.
import { html } from '/ui/vendor/preact-htm.js';

export function fmtTime(iso, timeZone) {
  if (!iso) return '–';
  const d = new Date(iso);
  const fields = { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone, ...fields }).formatToParts(d);
  const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}
export const fmtUtc = (iso) => (iso ? `${fmtTime(iso, 'UTC')}Z` : '–');
export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  const a = Math.abs(ms);
  if (a < 1000) return `${ms} ms`;
  if (a < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  if (a < 7_200_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}
export const fmtBytes = (b) => (b === null || b === undefined ? '–' : `${(b / 1048576).toFixed(0)} MiB`);
export const pct = (x) => `${(x * 100).toFixed(1)} %`;
// A worker's queues as `canary 4×500`: fetch loops × batch size (at most their product run at once);
// a worker that did not record them shows its queue names.
export const fmtQueues = (w) => (w.queue_settings ? w.queue_settings.map((q) => `${q.queue} ${q.loops}×${q.batch_size}`).join(', ') : w.queues.join(', '));
export const errText = (e) => (e === null || e === undefined ? '' : typeof e === 'string' ? e : e.message ?? JSON.stringify(e));

export const State = ({ state }) => html`<span class=${`state state-${state}`} data-state=${state}>${state}</span>`;
export const ErrorBox = ({ error }) => (error ? html`<div class="error-box" role="alert">${error.message}</div>` : null);
