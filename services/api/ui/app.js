// Wombat dashboard: pages over the api's own JSON routes (no route of its own does
// anything the api would refuse). Preact + htm, served from the installed packages;
// native modules, one per page, without a build step.
import { html, render, useState, useEffect, useCallback } from '/ui/vendor/preact-htm.js';
import { TOKEN_KEY, api, loadMeta } from './client.js';
import { DataPage } from './pages/data.js';
import { DeadLetters } from './pages/dead-letters.js';
import { Overview } from './pages/overview.js';
import { RunPage } from './pages/run.js';
import { Runs } from './pages/runs.js';
import { Schedules } from './pages/schedules.js';

function TokenForm({ reason, onToken }) {
  const [value, setValue] = useState('');
  return html`<form class="token-form" onSubmit=${(e) => {
    e.preventDefault();
    onToken(value.trim());
  }}>
    <h1>Wombat</h1>
    <p>${reason}</p>
    <p><input type="password" name="token" placeholder="API_ADMIN_TOKEN or API_READ_TOKEN" value=${value}
      onInput=${(e) => setValue(e.target.value)} autocomplete="off" /></p>
    <p><button class="primary" type="submit">Open the dashboard</button></p>
    <p class="note">The token stays in this browser tab only (session storage).</p>
  </form>`;
}

function useRoute() {
  const [route, setRoute] = useState(location.hash.slice(1) || '/');
  useEffect(() => {
    const on = () => setRoute(location.hash.slice(1) || '/');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function App() {
  const route = useRoute();
  const [who, setWho] = useState(null);
  const [meta, setMeta] = useState(null);
  const [problem, setProblem] = useState(null);
  const check = useCallback(async () => {
    try {
      const w = await api('GET', '/api/whoami');
      const readable = !(w.reads === 'token' && w.role === 'anonymous');
      // The run states, triggers and job types, as the api names them; asked once reads are allowed.
      if (readable) setMeta(await loadMeta());
      setProblem(readable ? null : 'This api needs a token to read.');
      setWho(w);
    } catch (err) {
      if (err.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        setProblem('That token is not valid for this api.');
        setWho({ role: 'anonymous', reads: 'token' });
      } else setProblem(`The api did not answer: ${err.message}`);
    }
  }, []);
  useEffect(() => {
    check();
    const on = () => check();
    addEventListener('wombat-unauthorized', on);
    return () => removeEventListener('wombat-unauthorized', on);
  }, [check]);

  if (problem && (!who || who.reads === 'token'))
    return html`<${TokenForm} reason=${problem} onToken=${(t) => {
      sessionStorage.setItem(TOKEN_KEY, t);
      check();
    }} />`;
  if (!who || !meta) return html`<p class="loading">Loading…</p>`;
  const path = route.split('?')[0];
  const nav = [['/', 'Overview'], ['/schedules', 'Schedules'], ['/runs', 'Runs'], ['/dead-letters', 'Dead letters'], ['/data', 'Data']];
  let page;
  if (path === '/schedules') page = html`<${Schedules} role=${who.role} meta=${meta} />`;
  else if (path === '/runs') page = html`<${Runs} route=${route} meta=${meta} role=${who.role} key=${route} />`;
  else if (path.startsWith('/runs/')) page = html`<${RunPage} id=${path.slice('/runs/'.length)} meta=${meta} key=${path} />`;
  else if (path === '/dead-letters') page = html`<${DeadLetters} role=${who.role} />`;
  else if (path === '/data') page = html`<${DataPage} />`;
  else page = html`<${Overview} meta=${meta} />`;
  return html`
    <header>
      <span class="brand">Wombat</span>
      ${nav.map(([href, label]) => {
        const active = href === '/' ? path === '/' : path.startsWith(href);
        return html`<a href=${`#${href}`} class=${active ? 'active' : ''}>${label}</a>`;
      })}
      <span class="who" data-testid="role">${who.role === 'anonymous' ? 'read-only (no token)' : who.role === 'read' ? 'read-only token' : 'admin'}
        ${sessionStorage.getItem(TOKEN_KEY)
          ? html` · <a href="#/" onClick=${() => {
              sessionStorage.removeItem(TOKEN_KEY);
              check();
            }}>forget token</a>`
          : html` · <a href="#/" onClick=${() => {
              setProblem('Give a token to act on schedules and dead letters.');
              setWho({ ...who, reads: 'token' });
            }}>use a token</a>`}
      </span>
    </header>
    <main>${page}</main>`;
}

render(html`<${App} />`, document.getElementById('app'));
