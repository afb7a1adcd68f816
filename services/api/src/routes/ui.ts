import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import Type from 'typebox';
import { repoRoot } from '@wombat/core/platform';
import type { App, AppDeps } from '../deps.ts';
import { roleOf } from '../auth.ts';
import { listSeries, readCandles } from '../data-series.ts';
import { cachedDatabaseHealth } from '@wombat/core/alerts';
import { readOverview } from '../overview.ts';

const require = createRequire(import.meta.url);
/** The folder of a file a package exports (htm's exports hide its package.json). */
const exportedDir = (specifier: string) => path.dirname(require.resolve(specifier));
const uiDir = path.join(repoRoot, 'services/api/ui');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/**
 * The dashboard's own files: every .html, .js and .css under ui/ (its modules, one
 * per page), by their path there; index.html is the folder itself. Listed once at
 * start, so a request names an entry of this list and never reaches the disk.
 */
function ownAssets(): Record<string, { file: string; type: string }> {
  const out: Record<string, { file: string; type: string }> = {};
  for (const entry of readdirSync(uiDir, { recursive: true, withFileTypes: true })) {
    const type = TYPES[path.extname(entry.name)];
    if (!entry.isFile() || !type) continue;
    const file = path.join(entry.parentPath, entry.name);
    const name = path.relative(uiDir, file).split(path.sep).join('/');
    out[name === 'index.html' ? '' : name] = { file, type };
  }
  return out;
}

/** The dashboard's files: its own, and the two libraries it uses, served from the installed packages (no CDN). */
const ASSETS: Record<string, { file: string; type: string }> = {
  ...ownAssets(),
  'vendor/preact-htm.js': { file: path.join(exportedDir('htm/preact'), 'standalone.module.js'), type: 'text/javascript; charset=utf-8' },
  'vendor/uplot.js': { file: path.join(exportedDir('uplot'), 'uPlot.esm.js'), type: 'text/javascript; charset=utf-8' },
  'vendor/uplot.css': { file: path.join(exportedDir('uplot'), 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

const Figure = Type.Object({ value: Type.Number(), level: Type.Union([Type.Literal('ok'), Type.Literal('warning'), Type.Literal('critical')]) });

/** The dashboard: static pages that call the api's own routes with the token the operator gives them. */
export function uiRoutes(app: App, deps: AppDeps): void {
  const databaseHealth = cachedDatabaseHealth(deps.db, deps.watchedPaths ?? []);
  // Read once: the files ship with the package and do not change while the api runs.
  const files = new Map(Object.entries(ASSETS).map(([name, a]) => [name, { body: readFileSync(a.file), type: a.type }]));
  const hidden = { config: { access: 'none' as const }, schema: { hide: true } };

  app.get('/', hidden, async (_request, reply) => reply.redirect('/ui/'));
  app.get('/ui', hidden, async (_request, reply) => reply.redirect('/ui/'));
  app.get('/ui/*', hidden, async (request, reply) => {
    const name = (request.params as { '*': string })['*'];
    const asset = files.get(name);
    if (!asset) return reply.status(404).type('text/plain; charset=utf-8').send(`no dashboard file ${name}; the dashboard is at /ui/`);
    return reply
      .type(asset.type)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
      .send(asset.body);
  });

  app.get(
    '/api/whoami',
    {
      config: { access: 'none' },
      schema: {
        summary: 'what the caller\'s token allows: admin (every action), read (no actions) or anonymous; and whether reads need a token',
        tags: ['status'],
        response: { 200: Type.Object({ role: Type.Union([Type.Literal('admin'), Type.Literal('read'), Type.Literal('anonymous')]), reads: Type.Union([Type.Literal('open'), Type.Literal('token')]) }) },
      },
    },
    async (request) => ({ role: roleOf(deps.auth, request), reads: deps.auth.reads }),
  );

  app.get(
    '/api/overview',
    {
      schema: {
        summary: 'at a glance: engines, workers, queue depth per job, runs of the last 24 h by state and per hour, failure rate, dead letters, open alerts, each with its threshold level',
        tags: ['status'],
        response: {
          200: Type.Object(
            {
              generated_at: Type.String({ format: 'date-time' }),
              live_workers: Figure,
              failure_ratio: Figure,
              avg_run_seconds: Figure,
              dead_letters: Figure,
            },
            { additionalProperties: true },
          ),
        },
      },
    },
    async () => readOverview(deps.sql, deps.thresholds, databaseHealth),
  );

  const time = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);
  app.get(
    '/api/data/series',
    {
      schema: {
        summary: 'candles stored per exchange, symbol and timeframe (first, last, count, missing periods) and when each was last collected',
        tags: ['data'],
        response: {
          200: Type.Object({
            series: Type.Array(
              Type.Object({
                exchange: Type.String(),
                symbol: Type.String(),
                timeframe: Type.String(),
                first: time,
                last: time,
                count: Type.Integer({ description: 'candles in the PostgreSQL mirror (STORAGE=postgres or both)' }),
                missing: Type.Union([Type.Integer(), Type.Null()], { description: 'periods between first and last without a candle (holidays and periods without trades included)' }),
                last_collected_at: time,
                last_run_id: Type.Union([Type.String(), Type.Null()]),
                last_run_state: Type.Union([Type.String(), Type.Null()]),
                last_run_written: Type.Union([Type.Integer(), Type.Null()]),
              }),
            ),
          }),
        },
      },
    },
    async () => ({ series: await listSeries(deps.sql) }),
  );

  app.get(
    '/api/data/candles',
    {
      schema: {
        summary: 'the newest candles of one series from the PostgreSQL mirror, oldest first',
        tags: ['data'],
        querystring: Type.Object(
          {
            exchange: Type.String({ minLength: 1, maxLength: 20 }),
            symbol: Type.String({ minLength: 1, maxLength: 40 }),
            timeframe: Type.String({ minLength: 1, maxLength: 4 }),
            limit: Type.Integer({ minimum: 1, maximum: 5000, default: 300 }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            candles: Type.Array(Type.Object({ time: Type.String(), open: Type.Number(), high: Type.Number(), low: Type.Number(), close: Type.Number(), volume: Type.Number() })),
          }),
        },
      },
    },
    async (request) => ({ candles: await readCandles(deps.sql, request.query) }),
  );
}
