// The overview: engines, workers, queues, thresholds and the last 24 hours at a glance.
import { html } from '/ui/vendor/preact-htm.js';
import { LatenessChart, RunsPerHourChart } from '../charts.js';
import { useApi } from '../client.js';
import { ErrorBox, State, fmtBytes, fmtQueues, fmtUtc, pct } from '../format.js';

const Card = ({ label, figure, text, testid }) =>
  html`<div class=${`card level-${figure?.level ?? 'ok'}`} data-testid=${testid} data-level=${figure?.level ?? 'ok'}>
    <div class="label">${label}</div><div class="value">${text ?? figure?.value}</div>
  </div>`;

const fmtSize = (b) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : fmtBytes(b));
const fmtAge = (s) => (s < 120 ? `${Math.round(s)} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);

/** The database and the disks under it: what takes everything down when it runs out. */
function Database({ db }) {
  const growth = db.growth_bytes_per_day === null ? '' : ` (${db.growth_bytes_per_day >= 0 ? '+' : '−'}${fmtSize(Math.abs(db.growth_bytes_per_day))}/day)`;
  return html`
    <h2>Database</h2>
    <div class="cards" data-testid="database">
      <${Card} label="Database size" figure=${{ level: 'ok' }} text=${`${fmtSize(db.size_bytes)}${growth}`} testid="db-size" />
      <${Card} label="Connections" figure=${db.connections} text=${`${db.connections.used} / ${db.connections.max}`} testid="db-connections" />
      <${Card} label="Oldest open transaction" figure=${db.oldest_transaction_s ?? { level: 'ok' }}
        text=${db.oldest_transaction_s ? fmtAge(db.oldest_transaction_s.value) : 'none'} testid="db-oldest-transaction" />
      ${db.filesystems.map(
        (f) => html`<${Card} label=${`Disk of ${f.role.replace('_', ' ')}`} figure=${{ level: f.level }}
          text=${`${pct(f.used_ratio)} used, ${fmtSize(f.free_bytes)} free`} testid=${`disk-${f.role}`} />`,
      )}
    </div>
    <table data-testid="db-tables" style="max-width: 40rem">
      <tr><th>table</th><th class="num">size</th><th class="num">dead rows</th><th>last vacuum</th></tr>
      ${db.largest_tables.map((t) => {
        const hot = db.hot_tables.find((h) => h.table === t.table);
        return html`<tr><td>${t.table}</td><td class="num">${fmtSize(t.bytes)}</td>
          <td class=${`num text-${hot?.level ?? 'ok'}`}>${hot ? `${hot.dead_rows} (${pct(hot.dead_ratio)})` : ''}</td>
          <td>${hot ? fmtUtc(hot.last_vacuum) : ''}</td></tr>`;
      })}
    </table>`;
}

export function Overview({ meta }) {
  const { data, error } = useApi('/api/overview', 5000);
  if (!data) return html`<${ErrorBox} error=${error} /><p>Loading…</p>`;
  const enginesAlive = data.engines.filter((e) => e.alive).length;
  const engineFigure = { value: enginesAlive, level: enginesAlive === 0 ? 'critical' : 'ok' };
  const runs24 = meta.run_states
    .filter((s) => data.runs_24h[s])
    .map((s) => html`<tr><td><${State} state=${s} /></td><td class="num">${data.runs_24h[s]}</td></tr>`);
  const alertLevel = !data.alerts?.length ? 'ok' : data.alerts.some((a) => a.severity === 'critical') ? 'critical' : 'warning';
  const workers = data.workers_known ? data.live_workers : null;
  return html`
    <h1>Overview</h1>
    <${ErrorBox} error=${error} />
    <div class="cards">
      <${Card} label="Engines alive" figure=${engineFigure} testid="engines-alive" />
      <${Card} label="Workers alive" figure=${workers} text=${workers ? workers.value : 'n/a'} testid="workers-alive" />
      <${Card} label="Failure rate (1 h)" figure=${data.failure_ratio} text=${pct(data.failure_ratio.value)} testid="failure-rate" />
      <${Card} label="Average run time (1 h)" figure=${data.avg_run_seconds} text=${`${data.avg_run_seconds.value.toFixed(1)} s`}
        testid="avg-run" />
      <${Card} label="Dead letters" figure=${data.dead_letters} testid="dead-letters" />
      ${data.alerts !== null && html`<${Card} label="Open alerts" figure=${{ value: data.alerts.length, level: alertLevel }} testid="open-alerts" />`}
    </div>
    ${data.alerts?.length > 0 &&
    html`<h2>Open alerts</h2>
      <table><tr><th>severity</th><th>what</th><th>since</th></tr>
        ${data.alerts.map(
          (a) => html`<tr><td class=${`text-${a.severity}`}>${a.severity}</td>
            <td>${a.subject}${a.count > 1 ? html` <span class="count" data-testid="alert-count">${a.count}${a.count_more ? '+' : ''} runs</span>` : null}</td>
            <td>${fmtUtc(a.opened_at)}</td></tr>`,
        )}
      </table>`}
    <h2>Queues</h2>
    <table data-testid="queues">
      <tr><th>job</th><th class="num">waiting</th><th class="num">active</th><th class="num">live workers</th></tr>
      ${data.queues.map(
        (q) => html`<tr><td>${q.queue}</td><td class=${`num text-${q.depth.level}`} data-level=${q.depth.level}>${q.depth.value}</td>
          <td class="num">${q.active}</td><td class="num">${q.live_workers ?? '–'}</td></tr>`,
      )}
    </table>
    <h2>Engines</h2>
    <table data-testid="engines">
      <tr><th>host</th><th>pid</th><th>state</th><th class="num">heartbeat age</th></tr>
      ${data.engines.length === 0 &&
      html`<tr><td colspan="4" class="text-critical">No scheduler-engine has ever run against this database.</td></tr>`}
      ${data.engines.map(
        (e) => html`<tr><td>${e.host}</td><td>${e.pid}</td>
          <td class=${e.alive ? 'text-ok' : 'text-critical'}>${e.alive ? (e.enabled ? 'alive' : 'alive (scheduling disabled)') : 'gone'}</td>
          <td class="num">${e.heartbeat_age_s} s</td></tr>`,
      )}
    </table>
    <h2>Workers</h2>
    ${!data.workers_known
      ? html`<p class="note">This database has no worker registry yet.</p>`
      : html`<table data-testid="workers">
          <tr><th>host</th><th>pid</th>
            <th title="fetch loops × jobs per fetch: at most their product of a queue's jobs run at once">queues (loops × batch)</th>
            <th>state</th><th class="num">runs in hand</th><th class="num">memory</th><th class="num">heartbeat age</th></tr>
          ${data.workers.length === 0 && html`<tr><td colspan="7" class="text-critical">No worker is alive: nothing will run.</td></tr>`}
          ${data.workers.map(
            (w) => html`<tr><td>${w.host}</td><td>${w.pid}</td><td data-testid="worker-queues">${fmtQueues(w)}</td>
              <td class=${w.alive ? 'text-ok' : 'text-critical'}>${w.alive ? 'alive' : 'gone'}</td><td class="num">${w.runs_in_hand}</td>
              <td class="num">${fmtBytes(w.rss_bytes)}</td><td class="num">${w.heartbeat_age_s} s</td></tr>`,
          )}
        </table>`}
    ${data.database && html`<${Database} db=${data.database} />`}
    <h2>Runs in the last 24 hours</h2>
    <table style="max-width: 22rem" data-testid="runs-24h"><tr><th>state</th><th class="num">runs</th></tr>${runs24}</table>
    <h2>Charts</h2>
    <${RunsPerHourChart} hours=${data.hours} states=${meta.run_states} />
    <${LatenessChart} hours=${data.hours} />
    <p class="note">Updated ${fmtUtc(data.generated_at)}, every 5 s.</p>`;
}
