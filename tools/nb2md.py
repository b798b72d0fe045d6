"Render a notebook's markdown and code cells (no outputs) as Markdown: `python tools/nb2md.py nbs/index.ipynb README.md`"
import json, sys
from pathlib import Path

def nb2md(nb_path):
    "Markdown text of the notebook at `nb_path`: prose as is, code cells fenced, `#|` directive lines and hidden cells dropped"
    cells, out = json.loads(Path(nb_path).read_text())['cells'], []
    for c in cells:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': out.append(src.strip())
        elif c['cell_type'] == 'code':
            lines = src.splitlines()
            if any(l.replace(' ','').startswith(('#|hide', '#|include:false')) for l in lines): continue
            code = '\n'.join(l for l in lines if not l.replace(' ','').startswith('#|')).strip()
            if code: out.append(f"```python\n{code}\n```")
    return '\n\n'.join(out) + '\n'

if __name__ == '__main__':
    src, dest = sys.argv[1], sys.argv[2]
    text = f"<!-- Generated from {src} by tools/nb2md.py: edit the notebook, then run `make readme`. -->\n\n" + nb2md(src)
    Path(dest).write_text(text)
