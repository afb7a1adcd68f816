// One run, followed live to its end, with its retries and requeues.
import { html, useState, useEffect } from '/ui/vendor/preact-htm.js';
import { api, useApi } from '../client.js';
import { ErrorBox, State, errText, fmtMs, fmtUtc } from '../format.js';
import { WaitsFor } from './schedule-graph.js';

/** The retries and requeues around a run: older ones through retry_of, newer through requeued_as. */
function useChain(run) {
  const [chain, setChain] = useState([]);
  useEffect(() => {
    if (!run) return;
    let live = true;
    (async () => {
      const before = [];
      let prev = run.retry_of;
      while (prev && before.length < 20) {
        const r = await api('GET', `/api/runs/${prev}`).catch(() => null);
        if (!r) break;
        before.unshift(r);
        prev = r.retry_of;
      }
      const after = [];
      let next = run.requeued_as;
      while (next && after.length < 20) {
        const r = await api('GET', `/api/runs/${next}`).catch(() => null);
        if (!r) break;
        after.push(r);
        next = r.requeued_as;
      }
      if (live) setChain([...before, run, ...after]);
    })();
    return () => {
      live = false;
    };
  }, [run?.id, run?.retry_of, run?.requeued_as]);
  return chain;
}

/** Polled every second until the run is in one of the api's finished states (/api/meta). */
export function RunPage({ id, meta }) {
  const [finished, setFinished] = useState(false);
  const { data: run, error } = useApi(`/api/runs/${id}`, finished ? 0 : 1000);
  useEffect(() => {
    if (run && meta.finished_run_states.includes(run.state)) setFinished(true);
  }, [run?.state]);
  const percent = run ? Math.round(run.progress * 100) : 0;
  const chain = useChain(run);
  const [acted, setActed] = useState(null);
  if (!run) return html`<${ErrorBox} error=${error} /><p>Loading…</p>`;
  // A backfill (its parent run) is resumed after a pause, or cancelled with its unfinished children.
  const backfill = run.trigger === 'backfill' && !run.parent_id && !meta.finished_run_states.includes(run.state);
  const act = (path) => api('POST', path, {}).then(() => setActed(null), setActed);
  return html`
    <h1>Run <span class="mono">${run.id}</span></h1>
    <${ErrorBox} error=${error} />
    <dl class="kv" data-testid="run">
      <dt>job</dt><dd>${run.job}</dd>
      <dt>state</dt>
      <dd data-testid="run-state"><${State} state=${run.state} />${run.reason ? html` <span class="note">${run.reason}</span>` : null}</dd>
      ${run.state === 'waiting' && run.schedule_id && html`<dt>waits for</dt><dd><${WaitsFor} scheduleId=${run.schedule_id} /></dd>`}
      <dt>progress</dt>
      <dd><div class="progress" data-testid="progress" data-progress=${run.progress}><div style=${`width: ${percent}%`}></div></div>
        <span class="note">${percent} % ${run.progress_message ?? ''}</span></dd>
      <dt>trigger</dt>
      <dd>${run.trigger}${run.schedule_id ? html` · <a href=${`#/runs?schedule=${run.schedule_id}`}>schedule ${run.schedule_id}</a>` : null}</dd>
      <dt>scheduled for</dt><dd class="mono">${fmtUtc(run.scheduled_for)}</dd>
      <dt>published</dt><dd class="mono">${fmtUtc(run.published_at)}</dd>
      <dt>started</dt><dd class="mono">${fmtUtc(run.started_at)} <span class="note">late ${fmtMs(run.start_lateness_ms)}</span></dd>
      <dt>finished</dt><dd class="mono">${fmtUtc(run.finished_at)} <span class="note">took ${fmtMs(run.duration_ms)}</span></dd>
      <dt>attempts</dt><dd>${run.attempts}</dd>
    </dl>
    ${backfill &&
    html`<div class="actions" data-testid="backfill-actions">
      ${run.state === 'held' && html`<button onClick=${() => act(`/api/runs/${run.id}/resume`)}>Resume backfill</button>`}
      <button class="danger" onClick=${() => confirm('Cancel this backfill and its unfinished runs?') && act(`/api/runs/${run.id}/cancel`)}>
        Cancel backfill
      </button>
    </div>
    <${ErrorBox} error=${acted} />`}
    <h2>Parameters</h2><pre>${JSON.stringify(run.params, null, 2)}</pre>
    ${run.result !== null && run.result !== undefined && html`<h2>Result</h2><pre data-testid="result">${JSON.stringify(run.result, null, 2)}</pre>`}
    ${run.error !== null &&
    run.error !== undefined &&
    html`<h2>Error</h2><pre class="text-critical" data-testid="error">${JSON.stringify(run.error, null, 2)}</pre>`}
    ${chain.length > 1 &&
    html`<h2>Retries and requeues</h2>
      <table data-testid="chain"><tr><th>run</th><th>state</th><th>created</th><th>error</th></tr>
        ${chain.map(
          (r) => html`<tr>
            <td class="mono">${r.id === run.id ? html`<b>${r.id}</b>` : html`<a href=${`#/runs/${r.id}`}>${r.id}</a>`}</td>
            <td><${State} state=${r.state} /></td><td>${fmtUtc(r.created_at)}</td><td>${errText(r.error)}</td>
          </tr>`,
        )}
      </table>`}`;
}
