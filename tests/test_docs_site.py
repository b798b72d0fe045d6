"""The documentation site: the builder's pieces (fast), and the whole site built and loaded in headless Chromium (slow).

The slow test builds the site into a temporary folder with `tools/docs.py` (executing every notebook), serves it locally
and loads every page in Debian's `chromium` (`make docs-browser` installs it); it needs the development environment
(nbdev, MkDocs), so it skips where they are missing (the newest-fastai environment).
"""
import importlib, importlib.util, json, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
ONLY = os.environ.get('DOCS_ONLY')  # only while working on the docs: build and check just these pages
SHOTS = Path(os.environ.get('DOCS_SHOTS', ROOT/'build'/'docs_shots'))

def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT/'tools'/f'{name}.py')
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m

docs = _load('docs')

# ---------------------------------------------------------------- fast: the builder's pieces
def test_page_names():
    test_cases = {'nbs/00_core.ipynb': 'core.md', 'nbs/index.ipynb': 'index.md', 'nbs/12b_io_more.ipynb': 'io_more.md',
                  'nbs/tutorials/extending.ipynb': 'tutorials/extending.md'}
    for nb, page in test_cases.items(): assert docs.page_name(ROOT/nb) == page

def test_every_notebook_is_found():
    found = {p.relative_to(ROOT).as_posix() for p in docs.find_notebooks()}
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT/'nbs').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts}
    assert 'nbs/index.ipynb' in found
    assert found == {p for p in on_disk if not any(s.startswith(('_', '.')) for s in p.split('/')[1:])}
    mods = {docs.default_exp(ROOT/p) for p in found} - {None}
    assert {'core', 'splitters'} <= mods

def test_linkify():
    links = {'check_range': ('api/core.md', 'check_range'), 'Learner.fit_stlr': ('api/schedules.md', 'learner.fit_stlr')}
    md = ('Use `check_range` or `check_range()`, not `other`; see `Learner.fit_stlr`.\n'
          '## `check_range` in a heading stays\n```python\n`check_range` in a fence stays\n```\n'
          'Already [`check_range`](x.md) linked, ``check_range`` double ticks stay.')
    out = docs.linkify(md, 'tutorials/extending.md', links).split('\n')
    assert out[0] == ('Use [`check_range`](../api/core.md#check_range) or [`check_range()`](../api/core.md#check_range), '
                      'not `other`; see [`Learner.fit_stlr`](../api/schedules.md#learner.fit_stlr).')
    assert out[1:5] == md.split('\n')[1:5]
    assert out[5] == md.split('\n')[5]
    assert docs.linkify('`check_range`', 'api/core.md', links) == '[`check_range`](core.md#check_range)'
    assert docs.linkify('`check_range`', 'api/core.md', links, skip_anchor='check_range') == '`check_range`'

def test_clean_showdoc():
    sd = ('---\n\n[source](https://github.com/x/y/blob/main/m.py#LNone){target="_blank" style="float:right"}\n\n'
          '### Learner.fit_stlr\n\n```python\ndef fit_stlr(\n    n_epoch, # Epochs\n):\n```\n\n*Fit with `stlr`*')
    out = docs.clean_showdoc(sd, level=2)
    assert 'github.com' not in out and '[source]' not in out
    assert '## Learner.fit_stlr { #learner.fit_stlr }' in out.split('\n')
    assert '###' not in out and '    n_epoch, # Epochs' in out.split('\n')  # heading level changed, signature untouched

def test_config_is_offline():
    yaml = pytest.importorskip('yaml')
    cfg = yaml.safe_load((ROOT/'docs'/'mkdocs.yml').read_text())
    assert cfg['theme']['name'] == 'material' and cfg['theme']['font'] is False  # no Google Fonts
    assert 'repo_url' not in cfg  # Material would fetch the repository's stars from the GitHub API
    assert not [u for u in cfg.get('extra_javascript', []) + cfg.get('extra_css', []) if '//' in str(u)]
    assert cfg['strict'] is True and cfg['validation']['anchors'] == 'warn'  # broken links and anchors fail the build

def test_readme_is_the_landing_notebook():
    nb2md = _load('nb2md')
    readme = (ROOT/'README.md').read_text()
    assert readme.split('\n', 2)[2] == nb2md.nb2md(ROOT/'nbs'/'index.ipynb'), \
        'README.md is out of step with nbs/index.ipynb: run `make readme`'

# ---------------------------------------------------------------- slow: build the site, load every page in Chromium
@pytest.fixture(scope='module')
def site(tmp_path_factory):
    for m in ('nbdev', 'execnb', 'mkdocs', 'material', 'websocket'): pytest.importorskip(m)
    out, work = tmp_path_factory.mktemp('site'), tmp_path_factory.mktemp('docs_work')
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'docs.py'), '--out', str(out), '--work', str(work)] + (['--only', ONLY] if ONLY else []),
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f'the docs build failed:\n{r.stdout[-4000:]}\n{r.stderr[-8000:]}'
    return out, work

@pytest.fixture(scope='module')
def browsed(site):
    browser = _load('docs_browser')
    if not browser.find_chromium(): pytest.fail('chromium is not installed: run `make docs-browser` (apt-get install chromium)')
    out, _ = site
    if SHOTS.exists(): shutil.rmtree(SHOTS)
    return browser.check_site(out, shots=SHOTS, api_page='api/core.html', search_term=browser.SEARCH_TERMS,
                              guide_page=browser.GUIDE_PAGE), browser

def _exported(modname):
    "Anchor ids the API page of `modname` must have: one per name in `__all__` (and per patched/public method)"
    sys.path.insert(0, str(ROOT))
    return [docs.anchor(n) for n, _, _ in docs.exported(modname, docs.modidx())]

@pytest.mark.slow
def test_site_has_every_page_and_symbol(site):
    out, work = site
    pages = {p.relative_to(out).as_posix() for p in out.rglob('*.html')}
    nbs, mods = docs.selection(ONLY)
    for nb in nbs: assert docs.page_name(nb)[:-3] + '.html' in pages, nb
    for m in mods:
        page = f'api/{m.split(".", 1)[1].replace(".", "/")}.html'
        assert page in pages, f'no API page for {m}'
        html = (out/page).read_text()
        for a in _exported(m): assert f'id="{a}"' in html, f'{page} has no entry for {a}'
    index = (out/'index.html').read_text()
    assert 'Paper-faithful ULMFiT' in index  # the landing page is nbs/index.ipynb
    assert json.loads((out/'search'/'search_index.json').read_text())['docs'], 'empty search index'
    for p in pages:  # offline: no page loads scripts, styles or fonts from the web
        assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', (out/p).read_text()), p
    core = (out/'core.html').read_text()
    assert 'class="language-python highlight"' in core and '<span class="k">' in core  # code highlighted by Pygments
    outputs = sum((out/p).read_text().count('class="nb-output') for p in pages)
    assert outputs > 0, 'no rendered notebook outputs'

@pytest.mark.slow
def test_browser_loads_every_page(site, browsed):
    report, browser = browsed
    assert report['problems'] == []
    nbs, mods = docs.selection(ONLY)
    assert len(report['pages']) >= len(nbs) + len(mods)
    nav = {u.rsplit('/', 2)[-2] + '/' + u.rsplit('/', 1)[-1] if '/api/' in u or '/tutorials/' in u else u.rsplit('/', 1)[-1]
           for u in report['nav']}
    for nb in nbs: assert docs.page_name(nb)[:-3] + '.html' in nav, f'{nb} is not in the sidebar'
    for m in mods: assert f'api/{m.split(".", 1)[1]}.html' in nav, f'the API page of {m} is not in the sidebar'
    for term in browser.SEARCH_TERMS: assert report['search'][term]['hits'], f'the site search found nothing for {term!r}'
    home = report['info']['index.html']
    assert home['images'] and not home['not_run'] and not browser.progress_lines(home['content_text'])
    for page in ('index.html', 'api/core.html') + (() if ONLY else (browser.GUIDE_PAGE,)):
        shot = Path(report['screenshots'][page])
        assert shot.exists() and not browser.blank_image(shot), shot

def _chromium_checker():
    "The docs browser checker, with websocket-client and a Chromium to drive (a missing Chromium fails: CI installs it)"
    browser = _load('docs_browser')
    pytest.importorskip('websocket')
    if not browser.find_chromium(): pytest.fail('chromium is not installed: run `make docs-browser` (apt-get install chromium)')
    return browser

@pytest.mark.slow
def test_browser_check_catches_problems(tmp_path):
    "The checker itself: a page with a broken link, a missing anchor, a console error and no sidebar is reported"
    browser = _chromium_checker()
    (tmp_path/'index.html').write_text('<html><body><h1 id="top">Hi</h1><a href="missing.html">x</a> '
                                       '<a href="index.html#nowhere">y</a><script>console.error("boom")</script></body></html>')
    problems = browser.check_site(tmp_path)['problems']
    assert any('missing page missing.html' in p for p in problems), problems
    assert any('missing anchor index.html#nowhere' in p for p in problems), problems
    assert any('boom' in p for p in problems), problems
    assert any('no navigation sidebar' in p for p in problems), problems

def test_progress_lines():
    "Raw progress-bar text, as fastprogress writes it to a terminal, is recognised; an epoch table and prose are not"
    browser = _load('docs_browser')
    raw = ['Epoch 1/2 : |----------------------------------------| 0.00% [0/5 00:00<?]',
           '|████████████████████████████████████████| 100.00% [5/5 00:01<00:00]',
           'Epoch 2/2 : |', '0.00% [0/12 00:00<?]']
    fine = ['epoch     train_loss  valid_loss  accuracy  time', '0         1.667623    1.609681    0.200000  00:00',
            'the run stops early (10 % of every class is held out)', 'accuracy 0.6000, macro F1 0.5670 on 100 texts',
            '| setting | labelled train articles |']
    assert browser.progress_lines('\n'.join(raw + fine)) == [l.strip()[:100] for l in raw]

@pytest.mark.slow
def test_browser_newcomer_checks_catch_a_broken_home(tmp_path):
    "A home page with a 'Not run' box, no image, raw progress text and a code line too wide to fit fails the newcomer checks; search must find every term"
    browser = _chromium_checker()
    long = 'x = ' + ' + '.join(['some_long_name'] * 60)
    (tmp_path/'index.html').write_text(
        '<html><body><div class="md-content" style="width:600px"><h1>Home</h1>'
        '<div class="admonition note"><p class="admonition-title">Not run in this build</p><p>flagged slow</p></div>'
        '<pre><code>Epoch 1/2 : |----------------------------------------| 0.00% [0/5 00:00&lt;?]</code></pre>'
        f'<pre style="white-space: pre; overflow-x: auto"><code>{long}</code></pre></div></body></html>')
    r = browser.check_site(tmp_path, search_term=browser.SEARCH_TERMS)
    problems = r['problems']
    assert any('"Not run in this build" box' in p for p in problems), problems
    assert any('no image on the home page' in p for p in problems), problems
    assert any('raw progress-bar text' in p and 'Epoch 1/2' in p for p in problems), problems
    assert any('wider than the content column' in p for p in problems), problems
    for term in browser.SEARCH_TERMS: assert any(f'search for {term!r} found nothing' in p for p in problems), problems
    # the same page, mended, passes those checks
    (tmp_path/'plot.png').write_bytes(_png())
    (tmp_path/'index.html').write_text('<html><body><div class="md-content" style="width:600px"><h1>Home</h1>'
                                       '<img src="plot.png"><pre><code>epoch  train_loss\n0      1.66</code></pre></div></body></html>')
    problems = browser.check_site(tmp_path)['problems']
    assert not [p for p in problems if 'Not run' in p or 'image' in p or 'progress' in p or 'wider' in p], problems

def _png():
    "A small PNG image"
    import io
    from PIL import Image
    b = io.BytesIO(); Image.new('RGB', (40, 30), (200, 80, 20)).save(b, format='PNG')
    return b.getvalue()

def test_rendering_helpers():
    "What a reader sees: carriage-return overwrites applied, `__iter__` headings as typed, `|` in API tables without a backslash in code, a module's own names first"
    assert docs.terminal('0% [0/5]\r40% [2/5]\r100% [5/5]\ndone') == '100% [5/5]\ndone'
    assert docs.heading('TextCorpus.__iter__', 3) == r'### TextCorpus.\_\_iter\_\_ { #textcorpus.\_\_iter\_\_ }'
    assert docs._cell('`float | np.ndarray`') == '`float | np.ndarray`' and docs._cell('a | b\nc') == r'a \| b c'
    links = {'main': ('api/demo.md', 'main'), 'cli.main': ('api/cli.md', 'main'), 'demo.main': ('api/demo.md', 'main')}
    assert docs.module_links(links, 'cli')['main'] == ('api/cli.md', 'main') and docs.module_links(links, None) == links
    assert docs._re_mpl_repr.match('<Axes: title={\'center\': \'lr\'}>') and not docs._re_mpl_repr.match('[1, 2]')
