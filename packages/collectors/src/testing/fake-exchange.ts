import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFakeKis, type FakeKisControls, type FakeKisOptions } from './fake-kis.ts';
import { createFakeUpbit, type FakeUpbitControls, type FakeUpbitOptions } from './fake-upbit.ts';
import type { Counter } from './fake-common.ts';

/**
 * A local HTTP server that behaves like Upbit's quotation API and KIS's domestic
 * stock API: seeded deterministic data (a gappy market, one listed two days ago),
 * their rate limits and error bodies, pagination, injectable faults, and the KIS
 * master zips at /master/{kospi,kosdaq}_code.mst.zip. Upbit and KIS share the
 * server: point both base URLs at `url`.
 */
export interface FakeExchangeOptions {
  /** Clock of the market data (which candles are closed); rate limits use real time. */
  now?: () => Date;
  upbit?: FakeUpbitOptions;
  kis?: FakeKisOptions;
  port?: number;
}

export interface FakeExchange {
  url: string;
  upbit: FakeUpbitControls;
  kis: FakeKisControls;
  requests: { upbit: Counter; kis: Counter };
  masterUrls: { kospi: string; kosdaq: string };
  close(): Promise<void>;
}

export async function startFakeExchange(opts: FakeExchangeOptions = {}): Promise<FakeExchange> {
  const now = opts.now ?? (() => new Date());
  const upbit = createFakeUpbit(opts.upbit ?? {}, now);
  const kis = createFakeKis(opts.kis ?? {}, now);
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    Promise.resolve()
      .then(async () => upbit.handle(req, res, url) || (await kis.handle(req, res, url)))
      .then((handled) => {
        if (!handled) {
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { name: 'not_found', message: 'no Route matched with those values' } }));
        }
      })
      .catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    upbit: upbit.controls,
    kis: kis.controls,
    requests: { upbit: upbit.controls.requests, kis: kis.controls.requests },
    masterUrls: { kospi: `${url}/master/kospi_code.mst.zip`, kosdaq: `${url}/master/kosdaq_code.mst.zip` },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Hanging requests (injected timeouts) and idle keep-alive sockets would hold close() open.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
