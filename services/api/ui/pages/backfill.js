// A schedule's backfill: the range and its settings, a preview of every occurrence (a dry run), then Start.
import { html, useState } from '/ui/vendor/preact-htm.js';
import { api } from '../client.js';
import { ErrorBox, fmtUtc } from '../format.js';

const BLANK = { from: '', to: '', concurrency: '1', rerun: false, pause_on_failure: false };

export function BackfillForm({ schedule, onStarted, onCancel }) {
  const [f, setF] = useState(BLANK);
  const [plan, setPlan] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (e) => {
    setF({ ...f, [k]: e.target.type === 'checkbox' ? e.target.checked : e.target.value });
    setPlan(null); // a preview speaks of the settings it was asked with
  };
  const body = (dryRun) => ({
    from: f.from.trim(),
    to: f.to.trim(),
    concurrency: Number(f.concurrency),
    rerun: f.rerun,
    pause_on_failure: f.pause_on_failure,
    dry_run: dryRun,
  });
  async function send(dryRun) {
    setError(null);
    setBusy(true);
    try {
      const res = await api('POST', `/api/schedules/${schedule.id}/backfill`, body(dryRun));
      if (dryRun) setPlan(res);
      else onStarted(res);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return html`
    <form class="grid" data-testid="backfill-form" onSubmit=${(e) => e.preventDefault()}>
      <label for="b-from">From</label>
      <div><input id="b-from" name="from" placeholder="2026-11-01 or 2026-11-01T00:00:00Z" value=${f.from} onInput=${set('from')} />
        <div class="note">inclusive; a date is midnight in the schedule's time zone (${schedule.timezone})</div></div>
      <label for="b-to">To</label>
      <div><input id="b-to" name="to" placeholder="2026-11-08" value=${f.to} onInput=${set('to')} /><div class="note">exclusive, not later than now</div></div>
      <label for="b-concurrency">Concurrency</label>
      <div>
        <input id="b-concurrency" name="concurrency" type="number" min="1" max="100" style="max-width: 6rem"
          value=${f.concurrency} onInput=${set('concurrency')} />
      </div>
      <label>Options</label>
      <div>
        <div><input id="b-rerun" name="rerun" type="checkbox" checked=${f.rerun} onChange=${set('rerun')} /> rerun occurrences that completed already</div>
        <div>
          <input id="b-pause" name="pause_on_failure" type="checkbox" checked=${f.pause_on_failure} onChange=${set('pause_on_failure')} />
          pause after a failure
        </div>
      </div>
      <span></span>
      <div>
        <${ErrorBox} error=${error} />
        <div class="actions">
          <button type="button" disabled=${busy} onClick=${() => send(true)}>Preview</button>
          <button type="button" class="primary" disabled=${busy || !plan || plan.run === 0} onClick=${() => send(false)}>Start backfill</button>
          <button type="button" onClick=${onCancel}>Close</button>
        </div>
      </div>
      ${plan &&
      html`<span></span>
        <div>
          <p class="note" data-testid="backfill-summary">
            ${plan.occurrences.length} occurrence(s): ${plan.run} to run, ${plan.skip} skipped (completed already)
          </p>
          ${plan.notes.map((n) => html`<p class="note">${n}</p>`)}
          <table data-testid="backfill-plan">
            <tr><th>schedule</th><th>scheduled for (UTC)</th><th>existing</th><th>action</th><th>params</th></tr>
            ${plan.occurrences.map(
              (o) => html`<tr data-occurrence=${o.scheduled_for} data-schedule=${o.schedule}>
                <td>${o.schedule}</td><td class="mono">${fmtUtc(o.scheduled_for)}</td><td>${o.existing}</td><td>${o.action}</td>
                <td class="mono">${JSON.stringify(o.params)}</td>
              </tr>`,
            )}
          </table>
        </div>`}
    </form>`;
}
