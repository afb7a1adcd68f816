import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { encodeCp949 } from './cp949.ts';

/**
 * A local shop for the price crawl: HTML listings (Korean won, euro, dollar
 * prices, a sold-out item, an unreadable one), a JSON product API, a page whose
 * layout changed, robots.txt, redirects (one in a loop), a slow page, a page that
 * answers 500 a few times, one that always does, and an EUC-KR page. Tests change
 * pages and robots.txt, inject faults per path, and read what was asked.
 */
export interface ShopPage {
  status?: number;
  body: string | Uint8Array;
  contentType?: string;
  headers?: Record<string, string>;
  /** Answer after this many ms. */
  delayMs?: number;
}

export type ShopFault = '500' | '503' | '429' | 'timeout' | 'reset';

export interface ShopRequest {
  path: string;
  userAgent: string | undefined;
  at: number;
}

export interface FakeShop {
  url: string;
  /** host:port, as a sources file's `hosts` names it. */
  host: string;
  /** Replace (or add) the page at `path` (path and query, e.g. /gpus?page=2). */
  setPage(path: string, page: ShopPage): void;
  /** The next `count` requests of `path` get `fault`. */
  inject(path: string, fault: ShopFault, count?: number): void;
  setRobots(page: ShopPage | undefined): void;
  requests: ShopRequest[];
  /** Most requests in flight at once. */
  maxInFlight(): number;
  close(): Promise<void>;
}

const html = (title: string, items: string) =>
  `<!doctype html><html lang="ko"><head><meta charset="utf-8"><title>${title}</title></head><body><ul class="products">${items}</ul></body></html>`;
const li = (name: string, price: string, stock = '재고 있음', href = '#') =>
  `<li class="product"><a class="title" href="${href}">${name}</a><span class="price">${price}</span><span class="stock">${stock}</span></li>`;

export function defaultShopPages(): Record<string, ShopPage> {
  return {
    '/gpus': {
      body: html(
        '그래픽카드',
        li('지포스 RTX 4090', '₩2,890,000', '재고 있음', '/p/4090') +
          li('지포스 RTX 4080 SUPER', '1,459,000원') +
          li('라데온 RX 7900 XTX', '품절', '품절') +
          li('지포스 RTX 4070 🎮', '가격 문의') +
          li('인텔 Arc A770', '₩389,000'),
      ),
    },
    '/gpus?page=2': { body: html('그래픽카드 2', li('지포스 RTX 4060', '₩419,000') + li('라데온 RX 7600', '₩339,000')) },
    '/eu': {
      body: html('GPUs', li('GeForce RTX 4090', '1.949,00 €', 'in stock') + li('Radeon RX 7900 XTX', '999,90 €', 'sold out') + li('Arc A770', '329 €')),
    },
    '/us': { body: html('GPUs', li('GeForce RTX 4090', '$1,599.99', 'In stock') + li('Radeon RX 7900 XTX', 'was $999 now $899', 'In stock')) },
    '/api/products': {
      contentType: 'application/json; charset=utf-8',
      body: JSON.stringify({
        data: {
          products: [
            { title: 'GeForce RTX 4090 Founders', price: { amount: 1599, currency: 'USD' }, available: true },
            { title: 'GeForce RTX 4080', price: { amount: '1,199.00', currency: 'USD' }, available: false },
            { title: 'Radeon RX 7800 XT', price: { amount: null, currency: 'USD' }, available: true },
          ],
        },
      }),
    },
    // The shop's redesign: the listing is now a grid of cards, the old selectors find nothing.
    '/broken': { body: '<html><body><div class="grid"><div class="card"><h3>RTX 4090</h3><b>₩2,890,000</b></div></div></body></html>' },
    '/moved': { status: 301, body: '', headers: { location: '/gpus?page=2' } },
    '/loop-a': { status: 302, body: '', headers: { location: '/loop-b' } },
    '/loop-b': { status: 302, body: '', headers: { location: '/loop-a' } },
    '/slow': { body: html('느린 페이지', li('지포스 RTX 3060', '₩329,000')), delayMs: 1500 },
    '/always-500': { status: 500, body: '<h1>Internal Server Error</h1>', contentType: 'text/html' },
    '/gone': { status: 404, body: '<h1>Not Found</h1>', contentType: 'text/html' },
    '/private/deals': { body: html('비공개', li('지포스 RTX 4090', '₩1,000,000')) },
    '/euc-kr': {
      contentType: 'text/html; charset=euc-kr',
      body: encodeCp949(`<html><body><ul class="products">${li('지포스 RTX 4070 Ti', '1,099,000원')}</ul></body></html>`),
    },
  };
}

export const DEFAULT_ROBOTS = 'User-agent: *\nDisallow: /private/\n\nUser-agent: BadBot\nDisallow: /\n';

export async function startFakeShop(opts: { pages?: Record<string, ShopPage>; robots?: ShopPage } = {}): Promise<FakeShop> {
  const pages = new Map(Object.entries(opts.pages ?? defaultShopPages()));
  let robots: ShopPage | undefined = opts.robots ?? { body: DEFAULT_ROBOTS, contentType: 'text/plain' };
  const faults = new Map<string, ShopFault[]>();
  const requests: ShopRequest[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const timers = new Set<NodeJS.Timeout>();

  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://shop');
    const path = u.pathname + u.search;
    requests.push({ path, userAgent: header(req.headers, 'user-agent'), at: Date.now() });
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let finished = false;
    const finish = () => {
      if (!finished) {
        finished = true;
        inFlight--;
      }
    };
    res.on('close', finish);
    const fault = faults.get(path)?.shift();
    if (fault === 'timeout') return; // never answered: the client's deadline must fire
    if (fault === 'reset') return void req.socket.destroy();
    if (fault) {
      res.writeHead(Number(fault), { 'content-type': 'text/html', ...(fault === '429' || fault === '503' ? { 'retry-after': '0' } : {}) });
      return void res.end(`<h1>${fault}</h1>`);
    }
    const page = u.pathname === '/robots.txt' ? robots : pages.get(path);
    if (!page) {
      res.writeHead(404, { 'content-type': 'text/html' });
      return void res.end('<h1>Not Found</h1>');
    }
    const answer = () => {
      res.writeHead(page.status ?? 200, { 'content-type': page.contentType ?? 'text/html; charset=utf-8', ...page.headers });
      res.end(page.body);
    };
    if (page.delayMs) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        answer();
      }, page.delayMs);
      timers.add(timer);
    } else answer();
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    setPage: (path, page) => void pages.set(path, page),
    inject(path, fault, count = 1) {
      const list = faults.get(path) ?? [];
      for (let i = 0; i < count; i++) list.push(fault);
      faults.set(path, list);
    },
    setRobots(page) {
      robots = page;
    },
    requests,
    maxInFlight: () => maxInFlight,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}
