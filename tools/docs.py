"""Build the documentation site: `python tools/docs.py [--out docs]` (what `make docs` runs).

1. Every notebook in `nbs/` (tutorials in `nbs/tutorials/`) is executed in its own process (forked from the builder, which
   has the package and fastai imported already, so no notebook pays for those imports) with nbdev's own machinery
   (`NBProcessor`, the `add_show_docs` processor, execnb's `CaptureShell`), skipping cells flagged with a `tst_flags` flag
   like `nbdev_test` does, then cleaned by nbdev's doc processors (hidden and export cells dropped, `#|` lines stripped)
   and written as Markdown with its outputs (text, tables, plots, `show_doc` entries).
2. For every module of the package an API page is generated from the module itself: `show_doc` of every name in `__all__`,
   of the public methods of its exported classes and of the methods it `@patch`es (nbdev's `_modidx.py` lists them).
3. Backticked symbol names in prose and docstrings link to their API entries (on a module's own pages its own names
   win), and fastai's names (`AWD_LSTM`, `DataLoaders`, ...) to docs.fast.ai, from fastai's own `_modidx.py`.
4. What a reader sees, not what a terminal would: progress bars are silent, fastai's per-epoch log is an HTML table (as
   in Jupyter), carriage-return overwrites in stored shell output are applied, bare matplotlib reprs are dropped.
5. MkDocs with the Material theme (`docs/mkdocs.yml`; offline: no web fonts, no CDN scripts) renders the site, in strict mode
   so a broken internal link or anchor fails the build, and the result replaces the generated files in `--out`.
Nothing is listed by hand: notebooks, modules and symbols are discovered at build time.

`python tools/docs.py --store NB` runs notebook NB the same way, its `slow` cells included, and saves the outputs of
the cells the build skips into the notebook (the build shows those saved outputs); run `nbdev_clean` afterwards.
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

def nav_title(nb:Path):
    "The title of notebook `nb` as plain text, for the navigation and links (MkDocs shows a nav label's backticks as typed)"
    return re.sub(r'`([^`]*)`', r'\1', nb_title(nb))

# Guides come first in the navigation, in this order; other tutorials follow by title
GUIDES = ('tutorials/your_data.md', 'tutorials/five_minutes.md')

# ---------------------------------------------------------------- links
# A backticked name, optionally called (`name()`, `name(x, y=1)`), not already a link and not inside double backticks
_re_code = re.compile(r'(?<![\[`])`([A-Za-z_][\w.]*)(\([^`()]*\))?`(?![`\]])')
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
    if tgt[0].startswith(('http://', 'https://')): return f'[{m.group(0)}]({tgt[0]}#{tgt[1]}){{ .nb-extlink }}'
    rel = posixpath.relpath(tgt[0], posixpath.dirname(page) or '.')
    return f'[{m.group(0)}]({rel}#{tgt[1]})'

def module_links(links:dict, mod:str):
    "`links` where module `mod`'s own names (`main`, `Foo.bar`) point to its own entries, whatever other modules export"
    if not mod: return links
    own = {k[len(mod)+1:]: v for k, v in links.items() if k.startswith(mod + '.')}
    return {**links, **own}

# fastai's methods that the prose names on their own (`fine_tune`), with the class they belong to
FASTAI_METHODS = {'fine_tune': 'Learner', 'freeze_to': 'Learner', 'fit_one_cycle': 'Learner', 'lr_find': 'Learner',
                  'unfreeze': 'Learner', 'export': 'Learner', 'save_encoder': 'TextLearner', 'load_pretrained': 'TextLearner'}

def fastai_links():
    "{name: (docs.fast.ai URL, anchor)} for fastai's public classes and functions (short names) and `Class.method`s, from its `_modidx.py`"
    try: d = importlib.import_module('fastai._modidx').d
    except ImportError: return {}
    host, res, short = d['settings']['doc_host'].rstrip('/'), {}, {}
    for mod, syms in d['syms'].items():
        for k, (doc, _) in syms.items():
            name = k[len(mod)+1:]
            if not _public(name) or '#' not in doc: continue
            url, anc = doc.split('#', 1)
            res[name] = (f'{host}/{url}', anc)
            if '.' in name: short.setdefault(name.rsplit('.', 1)[1], {})[name.split('.')[0]] = res[name]
    for meth, cls in FASTAI_METHODS.items():
        if cls in short.get(meth, {}): res[meth] = short[meth][cls]
    return res

# ---------------------------------------------------------------- show_doc output
_re_source = re.compile(r'^\[source\]\(([^)]*)\)\{[^}]*\}\s*$', re.M)
_re_head = re.compile(r'^(#{1,6}) +(\S+?)\s*$', re.M)

def anchor(name:str): return name.lower()

def _md_escape(name:str): return name.replace('_', '\\_') if '__' in name else name   # `__iter__` in a heading is not bold

def heading(name:str, level:int):
    "A Markdown heading for symbol `name`, its id `anchor(name)` (underscores escaped: `TextCorpus.__iter__` stays as typed)"
    return f'{"#"*level} {_md_escape(name)} {{ #{_md_escape(anchor(name))} }}'

def source_url(obj, s=None):
    "The URL of `obj`'s definition in the repository (`git_url` and `branch` of settings.ini), with its line; None when unknown"
    import inspect
    s = s or settings()
    try:
        o = inspect.unwrap(obj.fget if isinstance(obj, property) else obj)
        f, (_, line) = Path(inspect.getsourcefile(o)).resolve(), inspect.getsourcelines(o)
        rel = f.relative_to(ROOT).as_posix()
    except (TypeError, OSError, ValueError): return None
    return f'{s["git_url"].rstrip("/")}/blob/{s.get("branch", "main")}/{rel}#L{line}'

def source_link(url): return f'[[source]]({url}){{ .nb-source }}' if url else ''

def _url_of(name:str, file_url:str):
    "`source_url` of symbol `name` of the module whose file `file_url` (a show_doc link) names; None when it cannot be found"
    m = re.search(r'/blob/[^/]+/(.+?)\.py', file_url)
    if not m: return None
    try:
        o = importlib.import_module(m.group(1).replace('/', '.'))
        for part in name.split('.'): o = getattr(o, part)
    except (ImportError, AttributeError): return None
    return source_url(o)

def clean_showdoc(md:str, level=None, url=None):
    "nbdev `show_doc` Markdown with a working `[source]` link (`url`, else found from the symbol), its heading given an id (and optionally a level)"
    m, h = _re_source.search(md), _re_head.search(md)
    md = _re_source.sub('', md)
    if url is None and m and h: url = _url_of(h.group(2), m.group(1))
    def _h(mm): return source_link(url) + '\n\n' + heading(mm.group(2), level or len(mm.group(1))) + '\n'
    return _re_head.sub(_h, md, count=1).replace('---\n\n\n', '---\n\n', 1)

# ---------------------------------------------------------------- notebook -> Markdown (runs in a child process)
def _fence(text, lang='text'):
    ticks = '`'*max(3, 1+max((len(m) for m in re.findall(r'`+', text)), default=0))
    return f'{ticks}{lang}\n{text.rstrip()}\n{ticks}'

def _txt(v): return ''.join(v) if isinstance(v, list) else str(v)

def _strip_ansi(s): return re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', s)

def terminal(text:str) -> str:
    "What a terminal shows of `text`: each carriage return goes back to the start of the line and overwrites it"
    out = []
    for line in text.split('\n'):
        buf = []
        for seg in line.split('\r'): buf[:len(seg)] = seg
        out.append(''.join(buf).rstrip())
    return '\n'.join(out)

# Progress output as a reader of the built page should see it (installed in the child process that runs a notebook)
_TABLES, _TABLE_MARK = [], '\x02fastai-table:{}\x03'
_re_table_mark = re.compile('\x02fastai-table:(\\d+)\x03\n?')

def docs_progress():
    "fastprogress's console bars print nothing; fastai's per-epoch log is collected and shown as one HTML table per fit"
    import fastprogress.fastprogress as fp
    def _init(self, gen, total=None, display=True, leave=True, parent=None, master=None, txt_len=60):
        self.cols, self.length, self.max_len, self.prefix, self.fill = 100, 40, 0, '', '█'
        fp.ProgressBar.__init__(self, gen, total, display, leave, parent, master)
    def _write(self, line, table=False):
        if not table: return print(line)
        if getattr(self, 'docs_table', None) is None:
            self.docs_table = [list(map(str, line))]
            _TABLES.append(self.docs_table)
            print(_TABLE_MARK.format(len(_TABLES) - 1))
        else: self.docs_table.append(list(map(str, line)))
    fp.ConsoleProgressBar.__init__ = _init
    fp.ConsoleProgressBar.on_update = lambda self, val, text: None
    fp.ConsoleProgressBar.on_iter_end = lambda self: fp.ProgressBar.on_iter_end(self)
    fp.ConsoleMasterBar.write = _write

def _table_output(rows):
    "A Jupyter display output of fastai's per-epoch table `rows` (header first): HTML as fastprogress draws it, and plain text"
    from fastprogress.core import text2html_table
    w = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(rows[0]))]
    plain = '\n'.join('  '.join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows)
    from fastcore.basics import AttrDict
    return AttrDict(output_type='display_data', metadata={}, data={'text/html': text2html_table(rows).splitlines(True), 'text/plain': plain.splitlines(True)})

def tidy_outputs(outputs:list) -> list:
    "Cell outputs as a reader should see them: stream text as a terminal shows it, fastai's epoch tables (`docs_progress`) as HTML tables"
    from fastcore.basics import AttrDict
    res = []
    for o in outputs:
        if o.get('output_type') != 'stream':
            res.append(o); continue
        parts = _re_table_mark.split(terminal(_strip_ansi(_txt(o.get('text', '')))))
        for i, part in enumerate(parts):
            if i % 2: res.append(_table_output(_TABLES[int(part)]))
            elif part.strip('\n'): res.append(AttrDict(o, text=part.splitlines(True)))
    return res

_re_mpl_repr = re.compile(r'^\[?(<(matplotlib\.[\w.]+ object at 0x\w+|Axes: [^>]*|Figure size [^>]*|[\w.]*Text\([^>]*\))>(,\s*)?)+\]?$')

def output_md(o, page, links, img_dir:Path, img_stem):
    "Markdown/HTML for one notebook output"
    typ = o.get('output_type')
    if typ == 'stream':
        text = terminal(_strip_ansi(_txt(o.get('text', ''))))
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
    if 'text/plain' in data:
        text = _txt(data['text/plain'])
        if _re_mpl_repr.match(text.strip()): return ''   # `<Axes: ...>` of a cell ending in a plot call: the plot is the output
        return f'<div class="nb-output nb-text" markdown>\n\n{_fence(text)}\n\n</div>'
    return ''

_re_magic = re.compile(r'^\s*%%(bash|sh)\b[^\n]*\n?')

def _directive(d, name): return (d.get(name, [''])[0] or '').lower()

def render_notebook(nb_path:Path, page:str, dest:Path, links:dict, flags:set):
    "Execute notebook `nb_path` and write it as Markdown page `page` at `dest`"
    nb = run_notebook(nb_path, flags)
    fm = getattr(nb, 'frontmatter_', {}) or {}
    mod = default_exp(nb_path)
    links = module_links(links, mod)
    img_dir = dest.parent/(dest.stem + '_files')
    if img_dir.exists(): shutil.rmtree(img_dir)
    parts = [f'# {fm.get("title", nb_path.stem)}']
    if fm.get('description'): parts.append(linkify(fm['description'], page, links) + '\n{: .nb-subtitle }')
    if mod:
        api = f'api/{mod.replace(".", "/")}.md'
        parts.append(f'<span class="nb-module">module `{settings()["lib_name"]}.{mod}` · '
                     f'[API reference]({posixpath.relpath(api, posixpath.dirname(page) or ".")})</span>'
                     '\n{: .nb-moduleline }')
    private = _private_names(mod) if mod else set()
    for i, cell in enumerate(nb.cells): parts.append(cell_md(cell, i, page, links, img_dir, private))
    dest.write_text('\n\n'.join(p for p in parts if p) + '\n')

def run_notebook(nb_path:Path, flags:set, store:bool=False):
    "Execute the notebook `nb_path` with nbdev's processors (as `nbdev_test` runs it, cells with a skipped flag not run); the processed notebook"
    from nbdev.process import NBProcessor, Processor
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.processors import (populate_language, add_show_docs, strip_ansi, hide_line, filter_stream_,
                                  rm_header_dash, rm_export, clean_magics, hide_, strip_hidden_metadata)
    from execnb.shell import CaptureShell
    skip_flags = set(settings().get('tst_flags', '').split()) - flags
    docs_progress()

    class exec_all(Processor):
        "Run every code cell in one shell, as `nbdev_test` does; cells flagged with a skipped flag are marked, not run"
        def begin(self):
            os.chdir(nb_path.parent)
            self.k = CaptureShell(nb_path)
            self.k.run_cell('from nbdev.showdoc import show_doc')
        def __call__(self, cell):
            if cell.cell_type != 'code': return
            if _re_magic.match(cell.source): cell.lang_ = 'sh'
            if 'nbdev_export(' in cell.source: return
            d = getattr(cell, 'directives_', None) or {}
            if _directive(d, 'eval:') == 'false': return
            if skip_flags & d.keys():
                cell.skipped_ = sorted(skip_flags & d.keys())
                return
            self.k.cell(cell)
            if self.k.exc: raise RuntimeError(f'{nb_path.name}: cell {cell.idx_} failed:\n{cell.source}\n\n'
                                              + self.k.prettytb(fname=nb_path))
            cell.outputs = tidy_outputs(cell.get('outputs', []))
    if store: return NBProcessor(nb_path, procs=[exec_all], process=True).nb
    procs = [FrontmatterProc, populate_language, add_show_docs, exec_all, strip_ansi, hide_line, filter_stream_,
             rm_header_dash, rm_export, clean_magics, hide_, strip_hidden_metadata]
    return NBProcessor(nb_path, procs=procs, process=True).nb

def store_outputs(nb_path:Path):
    "Run notebook `nb_path`, every cell including those with `tst_flags`, and save into it the outputs of the cells the build skips (others' outputs are cleared: the build makes them)"
    from execnb.nbio import read_nb, write_nb
    ran = run_notebook(nb_path, set(settings().get('tst_flags', '').split()), store=True)
    skip = set(settings().get('tst_flags', '').split())
    nb = read_nb(nb_path)
    for c, r in zip(nb.cells, ran.cells):
        if c.cell_type != 'code': continue
        d = getattr(r, 'directives_', None) or {}
        c.outputs = [_plain_output(o) for o in r.get('outputs', [])] if skip & d.keys() else []
        c.execution_count = None
    write_nb(nb, nb_path)

def _plain_output(o):
    "A notebook output as plain JSON values (execnb's `AttrDict`s and lists)"
    return json.loads(json.dumps(o))

_re_private_call = re.compile(r'(?<![\w.])(_[a-z]\w*)\s*\(')

def _private_names(mod:str) -> set:
    "Names of the private functions and classes of module `mod` of the package (`_helper`), read from its source"
    f = ROOT/settings()['lib_path']/(mod.replace('.', '/') + '.py')
    if not f.exists(): return set()
    tree = ast.parse(f.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name.startswith('_') and not n.name.startswith('__')}

def _tests_private(src:str, private:set) -> bool:
    "Is the code `src` a check of the module's private helpers (it calls one), rather than an example for a reader?"
    return bool(private & set(_re_private_call.findall(src)))

def cell_md(cell, i, page, links, img_dir, private=frozenset()):
    "Markdown of one processed notebook cell; on a module's page, code cells with no output that call its private helpers are left out"
    if cell.cell_type == 'markdown': return linkify(cell.source, page, links)
    if cell.cell_type != 'code': return ''
    d = getattr(cell, 'directives_', None) or {}
    if _directive(d, 'include:') == 'false': return ''
    src = '\n'.join(l for l in cell.source.split('\n') if not re.match(r'^\s*#\|', l)).strip()
    is_sd = bool(re.match(r'^show_doc\(', src))
    outputs = cell.get('outputs', [])
    if not outputs and not getattr(cell, 'skipped_', None) and _tests_private(src, private): return ''
    parts = []
    lang = getattr(cell, 'lang_', 'python')
    if src and not is_sd and _directive(d, 'echo:') != 'false': parts.append(_fence(src, lang))
    if getattr(cell, 'skipped_', None):
        fl = ', '.join(f'`{f}`' for f in cell.skipped_)
        if outputs: parts.append(f'<p class="nb-stored">Output saved from a run of this cell (flagged '
                                 f'{", ".join(f"<code>{f}</code>" for f in cell.skipped_)}: the documentation build does not run it; '
                                 f'<code>make docs DOCS_FLAGS={cell.skipped_[0]}</code> does).</p>')
        else: parts.append(f'!!! note "Not run in this build"\n    This cell is flagged {fl}: the documentation build skips it, '
                           f'as `nbdev_test` does unless asked for these flags (`make docs DOCS_FLAGS={cell.skipped_[0]}`).')
    if _directive(d, 'output:') != 'false':
        for j, o in enumerate(outputs): parts.append(output_md(o, page, links, img_dir, f'cell{i}_{j}'))
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
    links = module_links(links, modname.split('.', 1)[1])
    parts = [f'# `{modname}`']
    if nb_page: parts.append(f'Every exported symbol of `{modname}`, with signature, parameter documentation and docstring. '
                             f'The module\'s prose and examples: [{nav_title(nb_page)}]'
                             f'({posixpath.relpath(page_name(nb_page), posixpath.dirname(page))}).')
    if not syms: parts.append('This module exports no symbols.')
    s = settings()
    for name, obj, member in syms:
        level, url = 3 if member else 2, source_url(obj, s)
        head = f'---\n\n{source_link(url)}\n\n{heading(name, level)}\n\n'
        sd = show_doc(obj, name=name) if callable(obj) else None
        if isinstance(obj, property):
            doc, ret = (obj.__doc__ or '').strip(), getattr(obj.fget, '__annotations__', {}).get('return')
            ret = '' if ret is None else f' -> {ret if isinstance(ret, str) else getattr(ret, "__name__", ret)}'
            md = head + _fence(f'@property\n{name.split(".")[-1]}{ret}', 'python') + (f'\n\n*{doc}*' if doc else '')
        elif sd is None and callable(obj):  # show_doc skips type-dispatched functions (a Transform's encodes/decodes)
            doc = (getattr(obj, '__doc__', None) or '').strip()
            md = (head + f'A type-dispatched method (`{type(obj).__name__}`): see the class above and the module page.'
                  + (f'\n\n*{doc.splitlines()[0]}*' if doc and not doc.startswith('<') else ''))
        elif callable(obj):
            md = sd._repr_markdown_()
            if isinstance(obj, type): md = re.sub(r'```python\ndef ', '```python\nclass ', md, count=1)
            md = clean_showdoc(md, level=level, url=url or '') + '\n\n' + params_table(obj)
        else:
            r = repr(obj)
            r = r if len(r) <= 300 else r[:300] + '...'
            md = f'---\n\n{heading(name, level)}\n\n' + _fence(f'{name} = {r}', 'python')
        parts.append(linkify(md, page, links, skip_anchor=anchor(name)))
    return '\n\n'.join(parts) + '\n'

def _cell(text:str) -> str:
    "`text` for a Markdown table cell: no newlines, and `|` escaped outside code spans (inside them a backslash would show)"
    parts = re.split(r'(`[^`]*`)', str(text).replace('\n', ' '))
    return ''.join(p if p.startswith('`') else p.replace('|', '\\|') for p in parts)

def params_table(obj):
    "A Markdown table of `obj`'s parameters from fastcore's `docments` (inline comments), or '' when none is documented"
    from fastcore.docments import docments
    import inspect
    try: d = docments(obj, full=True)
    except Exception: return ''
    if not any(v.get('docment') for v in d.values()): return ''
    def _anno(a):
        if a is inspect._empty: return ''
        return a if isinstance(a, str) else getattr(a, '__name__', repr(a))
    code = lambda x: f'`{x}`' if x and '`' not in x else x
    rows = ['| Parameter | Type | Default | Details |', '|---|---|---|---|']
    for k, v in d.items():
        if k == 'self' and not v.get('docment'): continue
        star = {inspect.Parameter.VAR_POSITIONAL: '*', inspect.Parameter.VAR_KEYWORD: '**'}.get(v.get('kind'), '')
        dflt = '' if v['default'] is inspect._empty else repr(v['default'])
        name = '**returns**' if k == 'return' else f'`{star}{k}`'
        if k == 'return' and not (v.get('docment') or _anno(v['anno'])): continue
        rows.append(f'| {name} | {_cell(code(_anno(v["anno"])))} | {_cell(code(dflt))} | {_cell(v.get("docment") or "")} |')
    return '\n'.join(rows)

def build_links(mods, idx):
    "{name: (api page, anchor)} for short, module-qualified and fully qualified names of every exported symbol (fastai's names last)"
    links, syms, methods = {}, {}, {}
    for m in mods:
        page = f'api/{m.split(".", 1)[1].replace(".", "/")}.md'
        syms[m] = exported(m, idx)
        for name, obj, _ in syms[m]:
            tgt = (page, anchor(name))
            for key in (f'{m}.{name}', f'{m.split(".", 1)[1]}.{name}'): links[key] = tgt
            if name not in links or getattr(obj, '__module__', None) == m: links[name] = tgt
            if '.' in name: methods.setdefault(name.rsplit('.', 1)[1], set()).add(tgt)
    for meth, tgts in methods.items():   # `fit_stlr` for `Learner.fit_stlr`, when only one class has it
        if len(tgts) == 1 and meth not in links: links[meth] = next(iter(tgts))
    return {**{k: v for k, v in fastai_links().items() if k not in links}, **links}, syms

# ---------------------------------------------------------------- site
def mkdocs_config(work:Path, nav, strict:bool=True):
    "The MkDocs config for this build: `docs/mkdocs.yml` plus the generated navigation, and the package's version in the header"
    import yaml
    cfg = yaml.safe_load((DOCS_CFG/'mkdocs.yml').read_text())
    s = settings()
    cfg.setdefault('site_name', s['lib_name'])
    cfg['site_name'] = f"{cfg['site_name']} {s['version']}"
    cfg.setdefault('site_description', s.get('description', ''))
    cfg.update(docs_dir='src', site_dir='site', nav=nav)
    if not strict: cfg['strict'] = False
    (work/'mkdocs.yml').write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))

def site_nav(nbs, api_nav):
    "The navigation: Home, then the guides and tutorials, then the modules' pages, then the API reference"
    nav, mod_nav, tut_nav, other_nav = [{'Home': 'index.md'}], [], [], []
    for nb in nbs:
        page = page_name(nb)
        if page == 'index.md': continue
        entry = {nav_title(nb): page}
        if page.startswith('tutorials/'): tut_nav.append(entry)
        elif default_exp(nb): mod_nav.append(entry)
        else: other_nav.append(entry)
    def order(e):
        title, page = next(iter(e.items()))
        return (GUIDES.index(page) if page in GUIDES else len(GUIDES), title)
    for title, items in (('Guides and tutorials', sorted(tut_nav, key=order)), ('Notes', other_nav), ('Modules', mod_nav),
                         ('API reference', api_nav)):
        if items: nav.append({title: items})
    return nav

def _child_env():
    "Environment of a notebook's process: one BLAS/OpenMP thread unless the caller chose (notebooks run side by side and oversubscribed threads crawl), the repository on `PYTHONPATH` for the shell commands a notebook runs"
    threads = {k: os.environ.get(k, '1') for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')}
    return dict(os.environ, **threads, PYTHONPATH=os.pathsep.join([str(ROOT)] + os.environ.get('PYTHONPATH', '').split(os.pathsep)).rstrip(os.pathsep))

def _render_child(args):
    "Execute and render one notebook in a new Python process (where `os.fork` is missing)"
    nb, page, dest, work, flags, links = args
    t = time.time()
    cmd = [sys.executable, str(Path(__file__).resolve()), '--render', str(nb), page, str(dest),
           '--work', str(work), '--flags', ' '.join(flags)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=_child_env())
    return nb, r, time.time() - t

def _forked(args, log:Path):
    "In a forked child: execute and render one notebook, its output going to `log`; never returns"
    nb, page, dest, work, flags, links = args
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1); os.dup2(fd, 2); os.close(fd)
        env = _child_env(); os.environ.clear(); os.environ.update(env); os.chdir(ROOT)
        import torch; torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))
        render_notebook(Path(nb).resolve(), page, Path(dest).resolve(), links, flags)
        code = 0
    except BaseException:
        import traceback; traceback.print_exc()
    finally:
        sys.stdout.flush(); sys.stderr.flush(); os._exit(code)

def _run_forked(tasks, jobs:int, work:Path):
    """Execute the notebooks of `tasks`, `jobs` at a time, each in its own child forked from this process.
    This process has imported fastai and the package (for the API pages), so a child starts with them loaded instead of
    paying about 4 s of imports per notebook; each notebook still gets a fresh process and namespace, as with `nbdev_test`."""
    logs, running, done, todo = work/'logs', {}, {}, list(enumerate(tasks))
    logs.mkdir(parents=True, exist_ok=True)
    while todo or running:
        while todo and len(running) < max(1, jobs):
            i, args = todo.pop(0)
            sys.stdout.flush(); sys.stderr.flush()
            pid = os.fork()
            if pid == 0: _forked(args, logs/f'{i}.log')
            running[pid] = (i, time.time())
        pid, status = os.wait()
        i, t = running.pop(pid)
        out = (logs/f'{i}.log').read_text(errors='replace') if (logs/f'{i}.log').exists() else ''
        done[i] = (tasks[i][0], subprocess.CompletedProcess([], os.waitstatus_to_exitcode(status), out, ''), time.time() - t)
    return [done[i] for i in range(len(tasks))]

def selection(only=None):
    "(notebooks, modules) to document: all of them, or those whose page names (`core`, `tutorials/x`) are in `only`"
    if isinstance(only, str): only = set(only.split(','))
    nbs, mods = find_notebooks(), modules()
    if not only: return nbs, mods
    return [nb for nb in nbs if page_name(nb)[:-3] in only], [m for m in mods if m.split('.', 1)[1] in only]

def build(out:Path, work:Path, flags:set, jobs:int, only=None, fork:bool=True):
    t0 = time.time()
    if work.exists(): shutil.rmtree(work)
    src = work/'src'; (src/'api').mkdir(parents=True); (src/'assets').mkdir()
    shutil.copy(DOCS_CFG/'extra.css', src/'assets'/'extra.css')
    sys.path.insert(0, str(ROOT))
    nbs, mods = selection(only)
    links, syms = build_links(modules(), modidx())   # every module's names link, even in a partial build
    (work/'links.json').write_text(json.dumps(links))
    by_mod = {default_exp(nb): nb for nb in nbs}
    tasks = []
    for nb in nbs:
        page = page_name(nb); (src/page).parent.mkdir(parents=True, exist_ok=True)
        tasks.append((nb, page, src/page, work, flags, links))
    if fork and hasattr(os, 'fork'): results = _run_forked(tasks, jobs, work)
    else:
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
    nav = site_nav(nbs, api_nav)
    if not (src/'index.md').exists(): sys.exit('nbs/index.ipynb is missing: it is the landing page.')
    mkdocs_config(work, nav, strict=not only)
    t1 = time.time()
    # A partial build (`--only`) links to pages it did not build: MkDocs warns about them instead of failing
    strict = [] if only else ['--strict']
    r = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', *strict, '--quiet', '-f', str(work/'mkdocs.yml')],
                       cwd=work, capture_output=True, text=True, env=dict(os.environ, NO_MKDOCS_2_WARNING='1'))
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
    ap.add_argument('--no-fork', action='store_true', default=os.environ.get('DOCS_FORK') == '0',
                    help='start each notebook in a new Python process instead of forking the builder (slower: every notebook imports fastai again)')
    ap.add_argument('--store', metavar='NB', nargs='+', help="run these notebooks (their slow cells too) and save the outputs of the cells the build skips into them")
    ap.add_argument('--render', nargs=3, metavar=('NB', 'PAGE', 'DEST'), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    flags = set(a.flags.split())
    if a.store:
        sys.path.insert(0, str(ROOT))
        for nb in a.store:
            t = time.time(); store_outputs(Path(nb).resolve())
            print(f'stored the outputs of {nb} ({time.time() - t:.0f}s); now run nbdev_clean')
        return
    if a.render:
        nb, page, dest = a.render
        links = json.loads((Path(a.work)/'links.json').read_text())
        return render_notebook(Path(nb).resolve(), page, Path(dest).resolve(), links, flags)
    build(Path(a.out).resolve(), Path(a.work).resolve(), flags, a.jobs, a.only, fork=not a.no_fork)

if __name__ == '__main__': main()
