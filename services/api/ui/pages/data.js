// Data: what is stored per series, and a candle chart of one.
import { html, useState } from '/ui/vendor/preact-htm.js';
import { Chart, candlePlugin } from '../charts.js';
import { useApi } from '../client.js';
import { ErrorBox, State, fmtUtc } from '../format.js';

function CandleChart({ series }) {
  const q = new URLSearchParams({ exchange: series.exchange, symbol: series.symbol, timeframe: series.timeframe, limit: '300' });
  const { data, error } = useApi(`/api/data/candles?${q}`);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!data) return html`<p>Loading…</p>`;
  if (data.candles.length === 0) {
    return html`<p class="note">No candle of this series is in PostgreSQL (collect with STORAGE=postgres or both to chart it here).</p>`;
  }
  const c = data.candles;
  const plotData = [c.map((k) => Date.parse(k.time) / 1000), ...['open', 'high', 'low', 'close'].map((f) => c.map((k) => k[f]))];
  const opts = {
    title: `${series.exchange} ${series.symbol} ${series.timeframe}: last ${c.length} candles (UTC)`,
    width: 900,
    height: 360,
    plugins: [candlePlugin()],
    scales: { y: { range: (u, min, max) => [min - (max - min) * 0.05, max + (max - min) * 0.05] } },
    series: [
      {},
      { label: 'open', show: false },
      { label: 'high', show: false },
      { label: 'low', show: false },
      { label: 'close', stroke: 'transparent' },
    ],
  };
  return html`<div data-testid="candle-chart"><${Chart} opts=${opts} data=${plotData} /></div>`;
}

export function DataPage() {
  const { data, error } = useApi('/api/data/series', 15000);
  const [chosen, setChosen] = useState(null);
  const rows = data?.series ?? [];
  return html`
    <h1>Data</h1>
    <p class="note">Candles stored in PostgreSQL per series (first, last, count, periods without a candle) and each series' latest collection.
      Parquet-only series show their latest collection.</p>
    <${ErrorBox} error=${error} />
    ${chosen && html`<${CandleChart} series=${chosen} key=${`${chosen.exchange}/${chosen.symbol}/${chosen.timeframe}`} />`}
    <table data-testid="series">
      <tr><th>exchange</th><th>symbol</th><th>timeframe</th><th>first candle</th><th>last candle</th><th class="num">count</th><th class="num">missing</th>
        <th>last collected</th><th></th></tr>
      ${rows.length === 0 && html`<tr><td colspan="9" class="note">Nothing collected yet.</td></tr>`}
      ${rows.map(
        (r) => html`<tr data-series=${`${r.exchange}/${r.symbol}/${r.timeframe}`}>
          <td>${r.exchange}</td><td>${r.symbol}</td><td>${r.timeframe}</td><td class="mono">${fmtUtc(r.first)}</td><td class="mono">${fmtUtc(r.last)}</td>
          <td class="num">${r.count}</td><td class=${`num ${r.missing ? 'text-warning' : ''}`}>${r.missing ?? '–'}</td>
          <td>${r.last_run_id
            ? html`<a href=${`#/runs/${r.last_run_id}`}><${State} state=${r.last_run_state} /></a> <span class="note">${fmtUtc(r.last_collected_at)}</span>`
            : '–'}</td>
          <td>${r.count > 0 && html`<button onClick=${() => setChosen(r)}>Chart</button>`}</td>
        </tr>`,
      )}
    </table>`;
}
