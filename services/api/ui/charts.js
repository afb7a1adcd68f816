// Charts with uPlot, loaded once a chart is drawn so the tables paint without waiting for it.
import { html, useEffect, useRef } from '/ui/vendor/preact-htm.js';

let uPlotModule;
const loadUPlot = () => (uPlotModule ??= import('/ui/vendor/uplot.js').then((m) => m.default));

// Colours are the page's own; which states exist comes from the api (/api/meta). A state without one is grey.
const STATE_COLOURS = {
  completed: '#1a7f37',
  failed: '#c62828',
  running: '#2c3e9e',
  retrying: '#b26b00',
  queued: '#7986cb',
  held: '#26a69a',
  skipped: '#9e9e9e',
  missed: '#616161',
  cancelled: '#8e24aa',
};

export function Chart({ opts, data }) {
  const el = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    let live = true;
    loadUPlot().then((UPlot) => {
      if (!live) return;
      plot.current?.destroy();
      plot.current = new UPlot(opts, data, el.current);
    });
    return () => {
      live = false;
      plot.current?.destroy();
      plot.current = null;
    };
  }, [JSON.stringify(opts.series.map((s) => s.label)), opts.title]);
  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);
  return html`<div class="chart" ref=${el}></div>`;
}

/** `states`: every run state in lifecycle order (/api/meta), so the lines keep one order. */
export function RunsPerHourChart({ hours, states }) {
  const xs = hours.map((h) => Date.parse(h.hour) / 1000);
  const shown = states.filter((s) => hours.some((h) => h.states[s]));
  if (xs.length === 0 || shown.length === 0) return html`<p class="note">No runs in the last 24 hours.</p>`;
  const data = [xs, ...shown.map((s) => hours.map((h) => h.states[s] ?? 0))];
  const opts = {
    title: 'Runs per hour by state (last 24 h)',
    width: 640,
    height: 220,
    series: [{}, ...shown.map((s) => ({ label: s, stroke: STATE_COLOURS[s] ?? '#888', width: 2, points: { show: true } }))],
  };
  return html`<${Chart} opts=${opts} data=${data} />`;
}

export function LatenessChart({ hours }) {
  const rows = hours.filter((h) => h.lateness_p50_ms !== null);
  if (rows.length === 0) return html`<p class="note">No scheduled run has started in the last 24 hours.</p>`;
  const data = [rows.map((h) => Date.parse(h.hour) / 1000), rows.map((h) => h.lateness_p50_ms), rows.map((h) => h.lateness_p99_ms)];
  const opts = {
    title: 'Start lateness of scheduled runs, ms (per hour)',
    width: 640,
    height: 220,
    series: [{}, { label: 'p50', stroke: '#2c3e9e', width: 2 }, { label: 'p99', stroke: '#c62828', width: 2 }],
  };
  return html`<${Chart} opts=${opts} data=${data} />`;
}

/** uPlot draws lines; candles are drawn in its draw hook: a wick from low to high and a body from open to close. */
export function candlePlugin() {
  return {
    hooks: {
      draw: (u) => {
        const [xs, open, high, low, close] = u.data;
        const ctx = u.ctx;
        const width = Math.max(1, Math.min(12, (u.bbox.width / Math.max(1, xs.length)) * 0.7));
        ctx.save();
        for (let i = 0; i < xs.length; i++) {
          const x = Math.round(u.valToPos(xs[i], 'x', true));
          const up = close[i] >= open[i];
          ctx.strokeStyle = ctx.fillStyle = up ? '#1a7f37' : '#c62828';
          ctx.beginPath();
          ctx.moveTo(x, u.valToPos(high[i], 'y', true));
          ctx.lineTo(x, u.valToPos(low[i], 'y', true));
          ctx.stroke();
          const yo = u.valToPos(open[i], 'y', true);
          const yc = u.valToPos(close[i], 'y', true);
          ctx.fillRect(x - width / 2, Math.min(yo, yc), width, Math.max(1, Math.abs(yc - yo)));
        }
        ctx.restore();
      },
    },
  };
}
