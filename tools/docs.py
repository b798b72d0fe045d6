"""Build the documentation site: `python tools/docs.py [--out docs]` (what `make docs` runs).

1. Every notebook in `nbs/` (tutorials in `nbs/tutorials/`) is executed in its own fresh process with nbdev's own machinery
   (`NBProcessor`, the `add_show_docs` processor, execnb's `CaptureShell`), skipping cells flagged with a `tst_flags` flag
   like `nbdev_test` does, then cleaned by nbdev's doc processors (hidden and export cells dropped, `#|` lines stripped)
   and written as Markdown with its outputs (text, tables, plots, `show_doc` entries).
2. For every module of the package an API page is generated from the module itself: `show_doc` of every name in `__all__`,
   of the public methods of its exported classes and of the methods it `@patch`es (nbdev's `_modidx.py` lists them).
3. Backticked symbol names in prose and docstrings link to their API entries.
4. MkDocs with the Material theme (`docs/mkdocs.yml`; offline: no web fonts, no CDN scripts) renders the site, in strict mode
   so a broken internal link or anchor fails the build, and the result replaces the generated files in `--out`.
Nothing is listed by hand: notebooks, modules and symbols are discovered at build time.
"""
import argparse, ast, base64, configparser, importlib, json, os, posixpath, re, shutil, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS_CFG = ROOT/'docs'
# Files in docs/ that are sources, not build output: the build never deletes them.
KEEP = {'mkdocs.yml', 'requirements.txt', 'extra.css', 'README.md', '.gitignore'}

def settings():
    "nbdev's settings.ini as a dict"
    cp = configparser.ConfigParser()
    cp.read(ROOT/'settings.ini')
    return dict(cp['DEFAULT'])

def page_name(nb:Path):
    "Site path (Markdown) of notebook `nb`: `nbs/00_core.ipynb` -> `core.md`, `nbs/tutorials/x.ipynb` -> `tutorials/x.md`"
    rel = nb.relative_to(ROOT/'nbs')
    return (rel.parent/(re.sub(r'^\d+[a-z]?_', '', rel.stem) + '.md')).as_posix()

def default_exp(nb:Path):
    "The `#| default_exp` module name of notebook `nb`, or None"
    for c in json.loads(nb.read_text())['cells']:
        m = c['cell_type'] == 'code' and re.search(r'^\s*#\|\s*default_exp\s+(\S+)', ''.join(c['source']), re.M)
        if m: return m.group(1)

def find_notebooks():
    "All notebooks under `nbs/`, skipping checkpoints and names starting with `_` or `.`"
    res = [p for p in sorted((ROOT/'nbs').rglob('*.ipynb'))
           if not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT/'nbs').parts)]
    return res

def nb_title(nb:Path):
    "Title of a notebook from its first `# Title` markdown line"
    for c in json.loads(nb.read_text())['cells']:
        m = c['cell_type'] == 'markdown' and re.search(r'^#\s+(.+)$', ''.join(c['source']), re.M)
        if m: return m.group(1).strip()
    return nb.stem

# ---------------------------------------------------------------- links
_re_code = re.compile(r'(?<![\[`])`([A-Za-z_][\w.]*)(\(\))?`(?![`\]])')
_re_fence = re.compile(r'^\s*(```|~~~)')

def linkify(md:str, page:str, links:dict, skip_anchor=None):
    "Turn backticked names in `links` into Markdown links relative to `page`, outside code fences and headings"
    out, fence = [], None
    for line in md.split('\n'):
        m = _re_fence.match(line)
        if m:
            if fence is None: fence = m.group(1)
            elif m.group(1) == fence: fence = None
        elif fence is None and not line.lstrip().startswith('#'):
            line = _re_code.sub(lambda mm: _link(mm, page, links, skip_anchor), line)
        out.append(line)
    return '\n'.join(out)

def _link(m, page, links, skip_anchor):
    tgt = links.get(m.group(1))
    if not tgt or (tgt[0] == page and tgt[1] == skip_anchor): return m.group(0)
    rel = posixpath.relpath(tgt[0], posixpath.dirname(page) or '.')
    return f'[{m.group(0)}]({rel}#{tgt[1]})'

# ---------------------------------------------------------------- show_doc output
_re_source = re.compile(r'^\[source\]\([^)]*\)\{[^}]*\}\s*$', re.M)
_re_head = re.compile(r'^(#{1,6}) +(\S+?)\s*$', re.M)

def anchor(name:str): return name.lower()

def clean_showdoc(md:str, level=None):
    "nbdev `show_doc` Markdown without its GitHub source link, its heading given an id (and optionally a level)"
    md = _re_source.sub('', md)
    def _h(m):
        hashes = '#'*level if level else m.group(1)
        return f'{hashes} {m.group(2)} {{ #{anchor(m.group(2))} }}\n'
    return _re_head.sub(_h, md, count=1).replace('---\n\n\n', '---\n\n', 1)

# ---------------------------------------------------------------- notebook -> Markdown (runs in a child process)
def _fence(text, lang='text'):
    ticks = '`'*max(3, 1+max((len(m) for m in re.findall(r'`+', text)), default=0))
    return f'{ticks}{lang}\n{text.rstrip()}\n{ticks}'

def _txt(v): return ''.join(v) if isinstance(v, list) else str(v)

def _strip_ansi(s): return re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', s)

def output_md(o, page, links, img_dir:Path, img_stem):
    "Markdown/HTML for one notebook output"
    typ = o.get('output_type')
    if typ == 'stream':
        text = _strip_ansi(_txt(o.get('text', '')))
        if o.get('name') == 'stderr' or not text.strip(): return ''
        return f'<div class="nb-output nb-stream" markdown>\n\n{_fence(text)}\n\n</div>'
    if typ == 'error': return _fence(_strip_ansi('\n'.join(o.get('traceback', []))))
    data = o.get('data', {})
    if 'image/png' in data:
        img_dir.mkdir(parents=True, exist_ok=True)
        (img_dir/f'{img_stem}.png').write_bytes(base64.b64decode(_txt(data['image/png'])))
        return f'<div class="nb-output nb-image" markdown>\n\n![output]({img_dir.name}/{img_stem}.png)\n\n</div>'
    if 'image/svg+xml' in data: return f'<div class="nb-output nb-svg">\n{_txt(data["image/svg+xml"])}\n</div>'
    if 'text/markdown' in data:
        md = _txt(data['text/markdown'])
        if md.lstrip().startswith('---'): md = clean_showdoc(md)
        return f'<div class="nb-output nb-markdown" markdown>\n\n{linkify(md, page, links)}\n\n</div>'
    if 'text/html' in data:
        html = '\n'.join(l for l in _txt(data['text/html']).split('\n') if l.strip())
        return f'<div class="nb-output nb-html">\n{html}\n</div>'
    if 'text/plain' in data: return f'<div class="nb-output nb-text" markdown>\n\n{_fence(_txt(data["text/plain"]))}\n\n</div>'
    return ''

def render_notebook(nb_path:Path, page:str, dest:Path, links:dict, flags:set):
    "Execute notebook `nb_path` and write it as Markdown page `page` at `dest`"
    from nbdev.process import NBProcessor, Processor
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.processors import (populate_language, add_show_docs, strip_ansi, hide_line, filter_stream_,
                                  rm_header_dash, rm_export, clean_magics, hide_, strip_hidden_metadata)
    from execnb.shell import CaptureShell
    skip_flags = set(settings().get('tst_flags', '').split()) - flags

    class exec_all(Processor):
        "Run every code cell in one shell, as `nbdev_test` does; cells flagged with a skipped flag are marked, not run"
        def begin(self):
            os.chdir(nb_path.parent)
            self.k = CaptureShell(nb_path)
            self.k.run_cell('from nbdev.showdoc import show_doc')
        def __call__(self, cell):
            if cell.cell_type != 'code' or 'nbdev_export(' in cell.source: return
            d = getattr(cell, 'directives_', None) or {}
            if d.get('eval:', [''])[0].lower() == 'false': return
            if skip_flags & d.keys():
                cell.skipped_ = sorted(skip_flags & d.keys())
                return
            self.k.cell(cell)
            if self.k.exc: raise RuntimeError(f'{nb_path.name}: cell {cell.idx_} failed:\n{cell.source}\n\n'
                                              + self.k.prettytb(fname=nb_path))
    procs = [FrontmatterProc, populate_language, add_show_docs, exec_all, strip_ansi, hide_line, filter_stream_,
             rm_header_dash, rm_export, clean_magics, hide_, strip_hidden_metadata]
    nb = NBProcessor(nb_path, procs=procs, process=True).nb
    fm = getattr(nb, 'frontmatter_', {}) or {}
    img_dir = dest.parent/(dest.stem + '_files')
    if img_dir.exists(): shutil.rmtree(img_dir)
    parts = [f'# {fm.get("title", nb_path.stem)}']
    if fm.get('description'): parts.append(linkify(fm['description'], page, links) + '\n{: .nb-subtitle }')
    mod = default_exp(nb_path)
    if mod:
        api = f'api/{mod.replace(".", "/")}.md'
        parts.append(f'<span class="nb-module">module `{settings()["lib_name"]}.{mod}` · '
                     f'[API reference]({posixpath.relpath(api, posixpath.dirname(page) or ".")})</span>'
                     '\n{: .nb-moduleline }')
    for i, cell in enumerate(nb.cells): parts.append(cell_md(cell, i, page, links, img_dir))
    dest.write_text('\n\n'.join(p for p in parts if p) + '\n')

def cell_md(cell, i, page, links, img_dir):
    "Markdown of one processed notebook cell"
    if cell.cell_type == 'markdown': return linkify(cell.source, page, links)
    if cell.cell_type != 'code': return ''
    d = getattr(cell, 'directives_', None) or {}
    if d.get('include:', [''])[0].lower() == 'false': return ''
    src = '\n'.join(l for l in cell.source.split('\n') if not re.match(r'^\s*#\|', l)).strip()
    is_sd = bool(re.match(r'^show_doc\(', src))
    parts = []
    if src and not is_sd and d.get('echo:', [''])[0].lower() != 'false': parts.append(_fence(src, 'python'))
    if getattr(cell, 'skipped_', None):
        fl, stored = ', '.join(f'`{f}`' for f in cell.skipped_), bool(cell.get('outputs'))
        parts.append(f'!!! note "Not run in this build"\n    This cell is flagged {fl}: the documentation build skips it, '
                     f'as `nbdev_test` does unless asked for these flags (`make docs DOCS_FLAGS={cell.skipped_[0]}`). '
                     + ('The outputs below were saved in the notebook by an earlier run.' if stored else ''))
    if d.get('output:', [''])[0].lower() != 'false':
        for j, o in enumerate(cell.get('outputs', [])): parts.append(output_md(o, page, links, img_dir, f'cell{i}_{j}'))
    return '\n\n'.join(p for p in parts if p)

# ---------------------------------------------------------------- API pages (main process)
def modules():
    "Names of the package's modules (not `_private` ones), found on disk"
    lib = settings()['lib_path']
    return sorted('.'.join((lib,) + p.relative_to(ROOT/lib).with_suffix('').parts)
                  for p in (ROOT/lib).rglob('*.py') if not any(s.startswith('_') for s in p.relative_to(ROOT/lib).parts))

def modidx():
    "nbdev's symbol index `_modidx.d['syms']`"
    lib = settings()['lib_path']
    spec = importlib.util.spec_from_file_location('_modidx', ROOT/lib/'_modidx.py')
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m.d['syms']

def _public(name): return not any(p.startswith('_') for p in name.split('.'))

def exported(modname:str, idx:dict):
    "(qualified name, object, is_member) for every exported symbol of module `modname`, in source order"
    mod = importlib.import_module(modname)
    names = list(getattr(mod, '__all__', []))
    extra = [k[len(modname)+1:] for k in idx.get(modname, {}) if _public(k[len(modname)+1:])]
    res, seen = [], set()
    for n in names:
        res.append((n, getattr(mod, n), False)); seen.add(n)
        res += [(e, _resolve(mod, e), True) for e in extra if e.split('.')[0] == n and '.' in e]
    for e in extra:
        if '.' in e and e.split('.')[0] not in seen: res.append((e, _resolve(mod, e), False))
    return res

def _resolve(mod, name):
    o = mod
    for p in name.split('.'): o = getattr(o, p)
    return o

def api_page(modname:str, page:str, links:dict, syms, nb_page):
    "Markdown of the API page of module `modname`"
    from nbdev.showdoc import show_doc
    parts = [f'# `{modname}`']
    if nb_page: parts.append(f'Every exported symbol of `{modname}`, with signature, parameter documentation and docstring. '
                             f'The module\'s prose and examples: [{nb_title(nb_page)}]'
                             f'({posixpath.relpath(page_name(nb_page), posixpath.dirname(page))}).')
    if not syms: parts.append('This module exports no symbols.')
    for name, obj, member in syms:
        sd = show_doc(obj, name=name) if callable(obj) else None
        if isinstance(obj, property):
            doc, ret = (obj.__doc__ or '').strip(), getattr(obj.fget, '__annotations__', {}).get('return')
            ret = '' if ret is None else f' -> {ret if isinstance(ret, str) else getattr(ret, "__name__", ret)}'
            md = (f'---\n\n{"###" if member else "##"} {name} {{ #{anchor(name)} }}\n\n'
                  + _fence(f'@property\n{name.split(".")[-1]}{ret}', 'python') + (f'\n\n*{doc}*' if doc else ''))
        elif sd is None and callable(obj):  # show_doc skips type-dispatched functions (a Transform's encodes/decodes)
            doc = (getattr(obj, '__doc__', None) or '').strip()
            md = (f'---\n\n{"###" if member else "##"} {name} {{ #{anchor(name)} }}\n\n'
                  f'A type-dispatched method (`{type(obj).__name__}`): see the class above and the module page.'
                  + (f'\n\n*{doc.splitlines()[0]}*' if doc and not doc.startswith('<') else ''))
        elif callable(obj):
            md = sd._repr_markdown_()
            if isinstance(obj, type): md = re.sub(r'```python\ndef ', '```python\nclass ', md, count=1)
            md = clean_showdoc(md, level=3 if member else 2) + '\n\n' + params_table(obj)
        else:
            r = repr(obj)
            r = r if len(r) <= 300 else r[:300] + '...'
            md = f'---\n\n{"###" if member else "##"} {name} {{ #{anchor(name)} }}\n\n' + _fence(f'{name} = {r}', 'python')
        parts.append(linkify(md, page, links, skip_anchor=anchor(name)))
    return '\n\n'.join(parts) + '\n'

def params_table(obj):
    "A Markdown table of `obj`'s parameters from fastcore's `docments` (inline comments), or '' when none is documented"
    from fastcore.docments import docments
    import inspect
    try: d = docments(obj, full=True)
    except Exception: return ''
    if not any(v.get('docment') for v in d.values()): return ''
    esc = lambda x: str(x).replace('|', '\\|').replace('\n', ' ')
    def _anno(a):
        if a is inspect._empty: return ''
        return a if isinstance(a, str) else getattr(a, '__name__', repr(a))
    rows = ['| Parameter | Type | Default | Details |', '|---|---|---|---|']
    for k, v in d.items():
        if k == 'self' and not v.get('docment'): continue
        star = {inspect.Parameter.VAR_POSITIONAL: '*', inspect.Parameter.VAR_KEYWORD: '**'}.get(v.get('kind'), '')
        dflt = '' if v['default'] is inspect._empty else f'`{v["default"]!r}`'
        name = '**returns**' if k == 'return' else f'`{star}{k}`'
        if k == 'return' and not (v.get('docment') or _anno(v['anno'])): continue
        rows.append(f'| {name} | {esc(_anno(v["anno"])) and "`"+esc(_anno(v["anno"]))+"`"} | {esc(dflt)} | {esc(v.get("docment") or "")} |')
    return '\n'.join(rows)

def build_links(mods, idx):
    "{name: (api page, anchor)} for short, module-qualified and fully qualified names of every exported symbol"
    links, syms = {}, {}
    for m in mods:
        page = f'api/{m.split(".", 1)[1].replace(".", "/")}.md'
        syms[m] = exported(m, idx)
        for name, obj, _ in syms[m]:
            tgt = (page, anchor(name))
            for key in (f'{m}.{name}', f'{m.split(".", 1)[1]}.{name}'): links[key] = tgt
            if name not in links or getattr(obj, '__module__', None) == m: links[name] = tgt
    return links, syms

# ---------------------------------------------------------------- site
def mkdocs_config(work:Path, nav):
    "The MkDocs config for this build: `docs/mkdocs.yml` plus the generated navigation"
    import yaml
    cfg = yaml.safe_load((DOCS_CFG/'mkdocs.yml').read_text())
    s = settings()
    cfg.setdefault('site_name', s['lib_name'])
    cfg.setdefault('site_description', s.get('description', ''))
    cfg.update(docs_dir='src', site_dir='site', nav=nav)
    (work/'mkdocs.yml').write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))

def _render_child(args):
    nb, page, dest, work, flags = args
    t = time.time()
    cmd = [sys.executable, str(Path(__file__).resolve()), '--render', str(nb), page, str(dest),
           '--work', str(work), '--flags', ' '.join(flags)]
    # Notebooks run side by side: one BLAS/OpenMP thread each, unless the caller chose (oversubscribed threads crawl).
    threads = {k: os.environ.get(k, '1') for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')}
    env = dict(os.environ, **threads, PYTHONPATH=os.pathsep.join([str(ROOT)] + os.environ.get('PYTHONPATH', '').split(os.pathsep)).rstrip(os.pathsep))
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    return nb, r, time.time() - t

def selection(only=None):
    "(notebooks, modules) to document: all of them, or those whose page names (`core`, `tutorials/x`) are in `only`"
    if isinstance(only, str): only = set(only.split(','))
    nbs, mods = find_notebooks(), modules()
    if not only: return nbs, mods
    return [nb for nb in nbs if page_name(nb)[:-3] in only], [m for m in mods if m.split('.', 1)[1] in only]

def build(out:Path, work:Path, flags:set, jobs:int, only=None):
    t0 = time.time()
    if work.exists(): shutil.rmtree(work)
    src = work/'src'; (src/'api').mkdir(parents=True); (src/'assets').mkdir()
    shutil.copy(DOCS_CFG/'extra.css', src/'assets'/'extra.css')
    sys.path.insert(0, str(ROOT))
    nbs, mods = selection(only)
    links, syms = build_links(mods, modidx())
    (work/'links.json').write_text(json.dumps(links))
    by_mod = {default_exp(nb): nb for nb in nbs}
    tasks = []
    for nb in nbs:
        page = page_name(nb); (src/page).parent.mkdir(parents=True, exist_ok=True)
        tasks.append((nb, page, src/page, work, flags))
    with ThreadPoolExecutor(max(1, jobs)) as ex: results = list(ex.map(_render_child, tasks))
    failed = [(nb, r) for nb, r, _ in results if r.returncode]
    for nb, r, dt in results: print(f'  executed {nb.relative_to(ROOT)} in {dt:.1f}s' + ('  FAILED' if r.returncode else ''))
    if failed:
        for nb, r in failed: sys.stderr.write(f'\n==== {nb.relative_to(ROOT)} failed\n{r.stdout[-3000:]}{r.stderr[-6000:]}\n')
        sys.exit(1)
    api_nav = []
    for m in mods:
        short = m.split('.', 1)[1]
        page = f'api/{short.replace(".", "/")}.md'
        (src/page).parent.mkdir(parents=True, exist_ok=True)
        (src/page).write_text(api_page(m, page, links, syms[m], by_mod.get(short)))
        api_nav.append({short: page})
    nav, mod_nav, tut_nav, other_nav = [{'Home': 'index.md'}], [], [], []
    for nb in nbs:
        page = page_name(nb)
        if page == 'index.md': continue
        entry = {nb_title(nb): page}
        if page.startswith('tutorials/'): tut_nav.append(entry)
        elif default_exp(nb): mod_nav.append(entry)
        else: other_nav.append(entry)
    for title, items in (('Modules', mod_nav), ('Tutorials', tut_nav), ('Notes', other_nav), ('API reference', api_nav)):
        if items: nav.append({title: items})
    if not (src/'index.md').exists(): sys.exit('nbs/index.ipynb is missing: it is the landing page.')
    mkdocs_config(work, nav)
    t1 = time.time()
    r = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict', '--quiet', '-f', str(work/'mkdocs.yml')],
                       cwd=work, capture_output=True, text=True)
    if r.returncode: sys.exit(f'mkdocs build failed:\n{r.stdout}{r.stderr}')
    sync(work/'site', out)
    print(f'docs: {len(nbs)} notebooks, {len(mods)} API pages; executed in {t1-t0:.0f}s, rendered in {time.time()-t1:.0f}s '
          f'-> {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/index.html')

def sync(site:Path, out:Path):
    "Replace the generated files in `out` by `site`, keeping the sources in `KEEP`"
    out.mkdir(parents=True, exist_ok=True)
    for p in out.iterdir():
        if p.name in KEEP: continue
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    for p in site.iterdir():
        if p.name in KEEP: raise SystemExit(f'the site has a file named {p.name}, which docs/ keeps as a source')
        shutil.copytree(p, out/p.name) if p.is_dir() else shutil.copy2(p, out/p.name)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=str(ROOT/'docs'), help='where the HTML site goes (default: docs/)')
    ap.add_argument('--work', default=str(ROOT/'build'/'docs'), help='scratch folder for the generated Markdown')
    ap.add_argument('--flags', default=os.environ.get('DOCS_FLAGS', ''), help='tst_flags whose cells to run too, e.g. "slow"')
    ap.add_argument('--jobs', type=int, default=int(os.environ.get('DOCS_JOBS', '2')), help='notebooks executed at once')
    ap.add_argument('--only', default=os.environ.get('DOCS_ONLY'), help='comma-separated pages to build, e.g. "index,core,api" (for working on the docs)')
    ap.add_argument('--render', nargs=3, metavar=('NB', 'PAGE', 'DEST'), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    flags = set(a.flags.split())
    if a.render:
        nb, page, dest = a.render
        links = json.loads((Path(a.work)/'links.json').read_text())
        return render_notebook(Path(nb).resolve(), page, Path(dest).resolve(), links, flags)
    build(Path(a.out).resolve(), Path(a.work).resolve(), flags, a.jobs, a.only)

if __name__ == '__main__': main()
