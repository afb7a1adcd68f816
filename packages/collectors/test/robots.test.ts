import t from 'tap';
import { isAllowed, matchRobotsPattern, parseRobots } from '@wombat/collectors';

const rules = (text: string) => parseRobots(text, 'wombatcrawler');
const allowed = (text: string, path: string) => isAllowed(rules(text), new URL(path, 'https://shop.example'));

t.test('wildcards and end anchors match as RFC 9309 says', async (t) => {
  t.equal(allowed('User-agent: *\nDisallow: /private', '/private/deals'), false);
  t.equal(allowed('User-agent: *\nDisallow: /*.pdf$', '/files/a.pdf'), false);
  t.equal(allowed('User-agent: *\nDisallow: /*.pdf$', '/files/a.pdf?x=1'), true, '$ anchors at the end of path and query');
  t.equal(allowed('User-agent: *\nDisallow: /a*b*c', '/a-x-b-y-c-z'), false);
  t.equal(allowed('User-agent: *\nDisallow: /a*b*c', '/a-x-c-y-b'), true);
  t.equal(allowed('User-agent: *\nDisallow: /*\nAllow: /public/*', '/public/x'), true, 'the longer rule wins');
  t.equal(allowed('User-agent: *\nDisallow: /$', '/'), false);
  t.equal(allowed('User-agent: *\nDisallow: /$', '/x'), true);
  t.equal(allowed('User-agent: *\nDisallow: /a.c', '/abc'), true, '. is a literal character, not any character');
  t.equal(allowed('User-agent: *\nDisallow: /**x$', '/yyx'), false);
  t.equal(allowed('User-agent: *\nDisallow: /**x$', '/yyxz'), true, 'x is not the last character');
  t.equal(allowed('User-agent: *\nDisallow: /*x*$', '/yyxz'), false);
  t.match(matchRobotsPattern('/%E2%82%AC', '/€'), { matched: true }, 'percent-encoded patterns match decoded paths');
});

t.test('a pathological robots.txt pattern is matched in bounded steps, not by backtracking', async (t) => {
  // Against a backtracking RegExp this pattern took 30.7 s on a 55-character path;
  // every further character multiplies that, so 2,000 would take far longer than the test's timeout.
  const pattern = '/*a*a*a*a*a*a*a*a*b';
  for (const length of [55, 2000]) {
    const path = '/' + 'a'.repeat(length - 1);
    const r = matchRobotsPattern(pattern, path);
    t.equal(r.matched, false, `no match on ${length} characters`);
    t.ok(r.steps <= (pattern.length + 1) * (path.length + 1), `${r.steps} steps on ${length} characters, within (pattern + 1) × (path + 1)`);
  }
  t.equal(allowed(`User-agent: *\nDisallow: ${pattern}`, '/' + 'a'.repeat(1999)), true, 'the crawler asks the same question and gets its answer');
  t.equal(allowed(`User-agent: *\nDisallow: ${pattern}`, '/' + 'a'.repeat(1998) + 'b'), false);
});
