"""Write BENCHMARKS.md from bench/BENCHMARKS.in.md: every `{{results/NAME.md}}` line is replaced by that results file
(its title demoted one level) and `{{results/NAME.png}}` by a link to the plot. The tables themselves are only ever
written by the bench scripts, so BENCHMARKS.md cannot drift from them.

    python bench/collect.py        # (`make benchmarks`)"""
import re, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

def include(m) -> str:
    p = HERE/m.group(1)
    if not p.exists(): return f"*({m.group(1)} has not been produced yet: run the script named above.)*"
    if p.suffix == '.png': return f"![{p.stem}](bench/{m.group(1)})"
    return re.sub(r'^(#+) ', lambda h: '#' + h.group(1) + ' ', p.read_text().strip(), flags=re.M)

if __name__ == '__main__':
    src = (HERE/'BENCHMARKS.in.md').read_text()
    out = re.sub(r'^\{\{(results/[\w.-]+)\}\}$', include, src, flags=re.M)
    (HERE.parent/'BENCHMARKS.md').write_text(out)
    print(f"wrote {HERE.parent/'BENCHMARKS.md'} ({len(out.splitlines())} lines)")
