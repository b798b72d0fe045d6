"""Check a built documentation site in headless Chromium: `python tools/docs_browser.py docs/ --shots build/docs_shots`.

Serves the site from a local HTTP server, loads every HTML page in Debian's `chromium` (headless, no sandbox, no GPU, no
network calls of its own, a fresh profile) through the Chrome DevTools Protocol, and reports: pages that fail to load,
JavaScript console errors and exceptions, failed requests, internal links to missing pages or anchors, pages without the
navigation sidebar, and search terms that find nothing. And what a newcomer would trip over: on the home page a
"Not run in this build" box, no image, or a line of raw progress-bar text; on any page, raw progress-bar text or a
code block wider than the content column (it must fit or wrap). It saves screenshots of the home page, a guide and an
API page.
"""
import argparse, base64, functools, http.server, json, os, re, shutil, socketserver, subprocess, tempfile, threading, time
from pathlib import Path
from urllib.parse import urljoin, urldefrag, urlparse, unquote

CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--disable-default-apps', '--disable-extensions', '--mute-audio', '--hide-scrollbars',
                  '--window-size=1400,1000']

def find_chromium():
    "Path of the system Chromium, or None"
    for n in ('chromium', 'chromium-browser'):
        p = shutil.which(n)
        if p: return p

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

class serve:
    "Serve folder `root` on 127.0.0.1 (a free port) in a thread, as a context manager yielding the base URL"
    def __init__(self, root): self.root = str(root)
    def __enter__(self):
        h = functools.partial(_Quiet, directory=self.root)
        self.httpd = socketserver.ThreadingTCPServer(('127.0.0.1', 0), h)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f'http://127.0.0.1:{self.httpd.server_address[1]}/'
    def __exit__(self, *a): self.httpd.shutdown(); self.httpd.server_close()

class Chromium:
    "Headless Chromium driven over the DevTools Protocol: one page, its console errors and failed requests recorded"
    def __init__(self, exe=None, timeout=30):
        import websocket  # websocket-client
        self.exe, self.timeout = exe or find_chromium(), timeout
        if not self.exe: raise RuntimeError("chromium is not installed: `apt-get install chromium` (or `make docs-browser`)")
        self.profile = tempfile.mkdtemp(prefix='docs-chromium-')
        self.proc = subprocess.Popen([self.exe, *CHROMIUM_FLAGS, f'--user-data-dir={self.profile}',
                                      '--remote-debugging-port=0', 'about:blank'],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, t0 = Path(self.profile)/'DevToolsActivePort', time.time()
        while not (port_file.exists() and len(port_file.read_text().split('\n')) >= 2):
            if self.proc.poll() is not None or time.time() - t0 > self.timeout:
                self.close(); raise RuntimeError(f'{self.exe} did not start (exit code {self.proc.poll()})')
            time.sleep(0.1)
        port, path = port_file.read_text().split('\n')[:2]
        self.ws = websocket.create_connection(f'ws://127.0.0.1:{port}{path}', timeout=self.timeout, suppress_origin=True)
        self.next_id, self.events = 0, []
        tgt = self.send('Target.createTarget', url='about:blank')['targetId']
        self.session = self.send('Target.attachToTarget', targetId=tgt, flatten=True)['sessionId']
        for dom in ('Page', 'Runtime', 'Log', 'Network'): self.send(f'{dom}.enable', session=True)
        self.send('Emulation.setDeviceMetricsOverride', session=True, width=1400, height=1000, deviceScaleFactor=1, mobile=False)

    def send(self, method, session=False, **params):
        "Send a DevTools command and return its result; events that arrive meanwhile are kept in `events`"
        self.next_id += 1
        msg = dict(id=self.next_id, method=method, params=params)
        if session: msg['sessionId'] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            r = json.loads(self.ws.recv())
            if r.get('id') == self.next_id:
                if 'error' in r: raise RuntimeError(f'{method}: {r["error"]}')
                return r.get('result', {})
            if 'method' in r: self.events.append(r)

    def wait_event(self, method, timeout=None):
        "Wait for event `method` (returns it), keeping other events"
        t0 = time.time()
        for i, e in enumerate(self.events):
            if e['method'] == method: return self.events.pop(i)
        self.ws.settimeout(0.5)
        try:
            while time.time() - t0 < (timeout or self.timeout):
                try: r = json.loads(self.ws.recv())
                except Exception as ex:
                    if type(ex).__name__ == 'WebSocketTimeoutException': continue
                    raise
                if r.get('method') == method: return r
                if 'method' in r: self.events.append(r)
        finally: self.ws.settimeout(self.timeout)
        raise TimeoutError(f'no {method} within {timeout or self.timeout}s')

    def drain(self, secs=0.3):
        "Collect the events that arrive within `secs`"
        try: self.wait_event('__none__', timeout=secs)
        except TimeoutError: pass

    def load(self, url):
        "Load `url`, wait for its load event and idle; return (main document status, errors seen on the page)"
        self.events.clear()
        res = self.send('Page.navigate', session=True, url=url)
        if res.get('errorText'): return None, [f'navigation failed: {res["errorText"]}']
        self.wait_event('Page.loadEventFired')
        self.drain(0.5)
        status, errors = None, []
        for e in self.events:
            m, p = e['method'], e.get('params', {})
            if m == 'Network.responseReceived':
                st, u = p['response']['status'], p['response']['url']
                if p.get('type') == 'Document' and urldefrag(u)[0] == urldefrag(url)[0]: status = st
                if st >= 400: errors.append(f'HTTP {st} for {u}')
            elif m == 'Network.loadingFailed' and not p.get('canceled'): errors.append(f'request failed: {p.get("errorText")}')
            elif m == 'Network.requestWillBeSent':
                u = p['request']['url']
                if not u.startswith((self.origin(url), 'data:', 'blob:', 'about:')): errors.append(f'request outside the site: {u}')
            elif m == 'Runtime.exceptionThrown':
                d = p['exceptionDetails']
                errors.append(f'JavaScript exception: {d.get("exception", {}).get("description") or d.get("text")}')
            elif m == 'Runtime.consoleAPICalled' and p.get('type') in ('error', 'assert'):
                errors.append('console.error: ' + ' '.join(str(a.get('value', a.get('description', ''))) for a in p['args']))
            elif m == 'Log.entryAdded' and p['entry']['level'] == 'error':
                errors.append(f'console: {p["entry"]["text"]} {p["entry"].get("url", "")}'.strip())
        return status, errors

    @staticmethod
    def origin(url):
        u = urlparse(url)
        return f'{u.scheme}://{u.netloc}/'

    def js(self, expr):
        "Value of JavaScript expression `expr` in the page"
        r = self.send('Runtime.evaluate', session=True, expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r: raise RuntimeError(f'{expr[:80]}: {r["exceptionDetails"]}')
        return r['result'].get('value')

    def screenshot(self, dest):
        "Save a PNG screenshot of the viewport to `dest`"
        data = self.send('Page.captureScreenshot', session=True, format='png')['data']
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_bytes(base64.b64decode(data))
        return Path(dest)

    def close(self):
        try: self.ws.close()
        except Exception: pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try: self.proc.wait(10)
            except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self): return self
    def __exit__(self, *a): self.close()

PAGE_INFO = """(() => {
  const side = document.querySelector('.md-sidebar--primary');
  const nav = side ? side.querySelectorAll('a.md-nav__link[href]') : [];
  const shown = side && side.getBoundingClientRect().width > 0 && getComputedStyle(side).display !== 'none'
                && getComputedStyle(side).visibility !== 'hidden';
  const content = document.querySelector('.md-content') || document.body;
  const wide = Array.from(content.querySelectorAll('pre')).filter(p => p.getBoundingClientRect().width > 0)
    .filter(p => p.scrollWidth > p.clientWidth + 1 || p.getBoundingClientRect().right > content.getBoundingClientRect().right + 1)
    .map(p => (p.innerText || '').split('\\n')[0].slice(0, 80));
  const notRun = Array.from(content.querySelectorAll('.admonition, details'))
    .filter(e => /Not run/i.test((e.querySelector('.admonition-title, summary') || {}).textContent || '')).length;
  const images = Array.from(content.querySelectorAll('img')).filter(i => i.complete && i.naturalWidth > 0).length;
  return {ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id).concat(
                Array.from(document.querySelectorAll('a[name]')).map(e => e.name)),
          links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
          nav: Array.from(nav).map(a => a.href), sidebar: !!shown,
          h1: (document.querySelector('h1') || {}).textContent || '', text: document.body.innerText.length,
          content_text: content.innerText, wide_code: wide, code_blocks: content.querySelectorAll('pre').length,
          not_run: notRun, images: images, content_width: content.getBoundingClientRect().width};
})()"""

# A progress bar as fastprogress draws it in a terminal (`Epoch 1/2 : |████----| 40.00% [2/5 00:01<00:02]`), its bar,
# its counter alone (`0.00% [`), or its epoch prefix (`Epoch 1/2 : |`)
_re_progress = re.compile(r'\|[█X#=\-]{5,}\|\s*\d+(\.\d+)?%|\d+\.\d\d% \[|\bEpoch \d+/\d+ : \|')

def progress_lines(text:str) -> list:
    "The lines of `text` that are raw progress-bar output"
    return [l.strip()[:100] for l in text.split('\n') if _re_progress.search(l)]

SEARCH = """(async (q) => {
  const inp = document.querySelector('input.md-search__input');
  if (!inp) return {error: 'no search box'};
  document.querySelector('label[for=__search]') && document.getElementById('__search') && (document.getElementById('__search').checked = true);
  inp.focus(); inp.value = q; inp.dispatchEvent(new Event('input', {bubbles: true})); inp.dispatchEvent(new KeyboardEvent('keyup', {bubbles: true}));
  for (let i = 0; i < 100; i++) {
    const items = document.querySelectorAll('.md-search-result__item a');
    if (items.length) return {hits: Array.from(items).map(a => a.href)};
    await new Promise(r => setTimeout(r, 100));
  }
  return {hits: [], meta: (document.querySelector('.md-search-result__meta') || {}).textContent};
})(%s)"""

def blank_image(path, min_colors=8):
    "True when the PNG at `path` is (nearly) one colour"
    from PIL import Image
    im = Image.open(path).convert('RGB')
    colors = im.getcolors(maxcolors=1 << 16)
    return colors is not None and len(colors) < min_colors

def check_site(site, shots=None, api_page=None, search_term=None, exe=None, guide_page=None, pages=None, home='index.html'):
    "Load the pages of the site in folder `site` (all, or `pages`); return a report dict (`problems` lists everything that failed)"
    site = Path(site).resolve()
    every = sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html'))
    pages = every if pages is None else [p for p in every if p in set(pages)]
    terms = [search_term] if isinstance(search_term, str) else list(search_term or [])
    problems, info, shots_taken, search = [], {}, {}, {}
    if home not in every: problems.append(f'no {home} in the site')
    shot_names = {home: 'home.png', guide_page: 'guide.png', api_page: 'api.png'}
    with serve(site) as base, Chromium(exe) as br:
        for page in pages:
            url = urljoin(base, page)
            status, errors = br.load(url)
            if status != 200: problems.append(f'{page}: HTTP status {status}')
            problems += [f'{page}: {e}' for e in errors]
            info[page] = pi = br.js(PAGE_INFO)
            if page != '404.html' and (not pi['sidebar'] or len(pi['nav']) < 2):
                problems.append(f'{page}: no navigation sidebar (shown={pi["sidebar"]}, {len(pi["nav"])} links)')
            problems += [f'{page}: a code block is wider than the content column and does not wrap: {w!r}' for w in pi['wide_code']]
            problems += [f'{page}: raw progress-bar text: {l!r}' for l in progress_lines(pi['content_text'])[:3]]
            if page == home:
                if pi['not_run']: problems.append(f'{page}: {pi["not_run"]} "Not run in this build" box(es) on the home page')
                if not pi['images']: problems.append(f'{page}: no image on the home page (its Python run should draw a plot)')
            if shots is not None and page in shot_names and page:
                p = br.screenshot(Path(shots)/shot_names[page])
                shots_taken[page] = str(p)
                if blank_image(p): problems.append(f'{page}: the screenshot {p} is blank')
        for term in terms:
            br.load(urljoin(base, home))
            search[term] = r = br.js(SEARCH % json.dumps(term))
            if not r.get('hits'): problems.append(f'search for {term!r} found nothing: {r}')
    for page, pi in info.items():
        for href in pi['links'] + pi['nav']:
            if not href.startswith(base): continue
            path, frag = urldefrag(href)
            rel = unquote(urlparse(path).path.lstrip('/')) or 'index.html'
            if rel.endswith('/'): rel += 'index.html'
            target = site/rel
            if not target.exists(): problems.append(f'{page}: link to a missing page {rel}'); continue
            if frag and rel.endswith('.html') and rel in info:
                if unquote(frag) not in info[rel]['ids']: problems.append(f'{page}: link to a missing anchor {rel}#{frag}')
    return dict(pages=pages, problems=sorted(set(problems)), screenshots=shots_taken, search=search,
                nav=info.get(home, {}).get('nav', []), info=info)

SEARCH_TERMS = ('wt103', 'predict_texts', 'train-classifier')
GUIDE_PAGE = 'tutorials/five_minutes.html'   # the guide screenshotted (tutorials/your_data.html once issue 17's guide exists)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('site', nargs='?', default='docs')
    ap.add_argument('--shots', default='build/docs_shots', help='folder for the screenshots')
    ap.add_argument('--api-page', default='api/core.html', help='the API page to screenshot')
    ap.add_argument('--guide-page', default=GUIDE_PAGE, help='the guide to screenshot')
    ap.add_argument('--search', nargs='+', default=list(SEARCH_TERMS), help='words the site search must find')
    a = ap.parse_args(argv)
    r = check_site(a.site, a.shots, a.api_page, a.search, guide_page=a.guide_page)
    hits = {t: len(v.get('hits', [])) for t, v in r['search'].items()}
    print(f'{len(r["pages"])} pages loaded; screenshots: {r["screenshots"]}; search hits: {hits}')
    for p in r['problems']: print('PROBLEM', p)
    return 1 if r['problems'] else 0

if __name__ == '__main__': raise SystemExit(main())
