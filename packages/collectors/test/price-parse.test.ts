import t from 'tap';
import { isAllowed, parsePrice, parsePriceSources, parseRobots } from '@wombat/collectors';

t.test('reads prices in the forms shops show them', async (t) => {
  const cases: [string, object, object][] = [
    ['₩1,234,000', {}, { kind: 'price', amount: 1234000, currency: 'KRW' }],
    ['1,459,000원', {}, { kind: 'price', amount: 1459000, currency: 'KRW' }],
    ['KRW 389000', {}, { kind: 'price', amount: 389000, currency: 'KRW' }],
    ['1.234,00 €', {}, { kind: 'price', amount: 1234, currency: 'EUR' }],
    ['1.949,50\u00a0€', {}, { kind: 'price', amount: 1949.5, currency: 'EUR' }],
    ['1 234,56 EUR', {}, { kind: 'price', amount: 1234.56, currency: 'EUR' }],
    ['999,90 €', {}, { kind: 'price', amount: 999.9, currency: 'EUR' }],
    ['329 €', {}, { kind: 'price', amount: 329, currency: 'EUR' }],
    ['$1,299.99', { currency: 'USD' }, { kind: 'price', amount: 1299.99, currency: 'USD' }],
    ['US$1,299.99', {}, { kind: 'price', amount: 1299.99, currency: 'USD' }],
    ['1,299', { currency: 'USD' }, { kind: 'price', amount: 1299, currency: 'USD' }],
    ["CHF 1'299.00", {}, { kind: 'price', amount: 1299, currency: 'CHF' }],
    ['12,5', { currency: 'EUR' }, { kind: 'price', amount: 12.5, currency: 'EUR' }],
    ['1.234', { currency: 'EUR', decimalSeparator: ',' }, { kind: 'price', amount: 1234, currency: 'EUR' }],
    ['품절', {}, { kind: 'sold_out' }],
    ['일시 품절', {}, { kind: 'sold_out' }],
    ['Sold Out', {}, { kind: 'sold_out' }],
    ['out of stock', {}, { kind: 'sold_out' }],
  ];
  for (const [text, hints, want] of cases) t.same(parsePrice(text, hints), want, `${JSON.stringify(text)} ${JSON.stringify(hints)}`);
});

t.test('never guesses: ambiguous or malformed prices are unreadable with a reason', async (t) => {
  const cases: [string, object, RegExp][] = [
    ['가격 문의', {}, /no number/],
    ['', {}, /empty/],
    ['was $999 now $899', { currency: 'USD' }, /several numbers/],
    ['$1,299.99', {}, /could mean USD or/],
    ['1,299.99', {}, /no currency/],
    ['₩1,234,000', { currency: 'USD' }, /says KRW but the source says USD/],
    ['1,2345 €', {}, /4 decimals/],
    ['1,23,456원', {}, /grouped in threes/],
    ['₩1,234.50', {}, /no minor units/],
    ['0원', {}, /not above zero/],
    ['품절 1,000원', {}, /both a number and a sold-out mark/],
    ['€ 10 $ 12', { currency: 'EUR' }, /several numbers/],
    ['RTX 4090 1,999,000원', {}, /mixes group separators|grouped in threes|several numbers/],
  ];
  for (const [text, hints, reason] of cases) {
    const r = parsePrice(text, hints);
    t.equal(r.kind, 'unreadable', `${JSON.stringify(text)} is unreadable`);
    t.match(r.kind === 'unreadable' ? r.reason : '', reason);
  }
});

t.test('robots.txt: our group over *, longest rule wins, wildcards and Crawl-delay', async (t) => {
  const text = [
    'User-agent: *',
    'Disallow: /private/',
    'Disallow: /*.pdf$',
    'Allow: /private/open',
    '',
    'User-agent: WombatCrawler',
    'User-agent: other',
    'Disallow: /search',
    'Crawl-delay: 2',
  ].join('\n');
  const mine = parseRobots(text, 'wombatcrawler');
  t.equal(mine.crawlDelaySeconds, 2);
  t.notOk(isAllowed(mine, new URL('http://s/search?q=gpu')), 'our own group applies');
  t.ok(isAllowed(mine, new URL('http://s/private/x')), 'the * group does not apply when ours exists');
  const other = parseRobots(text, 'somebot');
  t.notOk(isAllowed(other, new URL('http://s/private/x')));
  t.ok(isAllowed(other, new URL('http://s/private/open/1')), 'the longer Allow wins');
  t.notOk(isAllowed(other, new URL('http://s/docs/a.pdf')));
  t.ok(isAllowed(other, new URL('http://s/docs/a.pdf?x=1')), '$ anchors the end');
  t.ok(isAllowed(other, new URL('http://s/gpus')));
  t.notOk(isAllowed({ disallowAll: true, rules: [] }, new URL('http://s/gpus')));
});

t.test('a sources file is checked whole, with one clear line per bad entry', async (t) => {
  const yaml = `
user_agent: "WombatCrawler/1.0 (+mailto:ops@example.com)"
hosts:
  "shop.example.com": { requestsPerSecond: 0.5 }
  "bad host!": { concurrency: 2 }
sources:
  - name: good
    url: https://shop.example.com/gpus
    items: "li.product"
    name_field: ".title"
    price: ".price"
  - name: no-url
    items: "li"
    name_field: ".t"
    price: ".p"
  - name: bad-selector
    url: https://shop.example.com/x
    items: "li[["
    name_field: ".t"
    price: ".p"
  - name: json-bad
    format: json
    url: ftp://shop.example.com/api
    items: "data..products"
    name_field: title
    price: "$"
    currency: "₩"
  - name: good
    url: https://shop.example.com/dup
    items: "li"
    name_field: ".t"
    price: ".p"
    colour: red
  - name: bad-regex
    url: https://shop.example.com/r
    items: "li"
    name_field: ".t"
    price: ".p"
    match: ["(unclosed"]
`;
  let err: Error | undefined;
  try {
    parsePriceSources(yaml, 'sources.yaml');
  } catch (e) {
    err = e as Error;
  }
  t.ok(err, 'the file is refused');
  const msg = err?.message ?? '';
  t.match(msg, /hosts\."bad host!" must be a host name/);
  t.match(msg, /sources\[1\] "no-url": needs url/);
  t.match(msg, /sources\[2\] "bad-selector": items "li\[\[" is not a CSS selector/);
  t.match(msg, /sources\[3\] "json-bad": currency "₩" must be an ISO 4217 code/);
  t.match(msg, /sources\[4\] "good": .*unknown field colour/);
  t.match(msg, /sources\[5\] "bad-regex": match "\(unclosed" is not a regular expression/);
  t.notMatch(msg, /sources\[0\]/, 'the good entry is not blamed');

  const json = parsePriceSources(JSON.stringify({ sources: [{ name: 'j', format: 'json', url: 'https://a.example/api', items: '$', name_field: 'title', price: 'price.amount', currency: 'usd' }] }), 's.json');
  t.equal(json.sources[0]!.currency, 'USD');
  t.same(json.defaults, { requestsPerSecond: 1, concurrency: 1 });
  t.throws(() => parsePriceSources('sources: [', 'x.yaml'), /not valid YAML/);
  t.throws(() => parsePriceSources('{"sources": []}', 'x.json'), /file.sources must not have fewer than 1 items/);
});

t.test('the shipped example sources file is valid', async (t) => {
  const { readFileSync } = await import('node:fs');
  const { repoRoot } = await import('@wombat/core/platform');
  const path = await import('node:path');
  const file = path.join(repoRoot, 'deploy/price-sources.example.yaml');
  const parsed = parsePriceSources(readFileSync(file, 'utf8'), file);
  t.same(parsed.sources.map((s) => s.name), ['shop-gpus', 'eu-shop', 'api-products']);
  t.same(parsed.hosts.get('shop.example.com'), { requestsPerSecond: 0.5, concurrency: 1 });
  t.equal(parsed.sources[0]!.match?.[0]!.test('GeForce RTX 4090'), true);
});
