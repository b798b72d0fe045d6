"""Benchmark (issue 14): peak resident memory of `ulmfit pretrain` on a general-English corpus at 1x, 4x and 16x its
size (the larger ones repeat the text), one epoch of the tiny preset with no token cap, so that the whole corpus is
tokenized, stored and read.

    python bench/bench_memory.py                  # 1x = 1M words of the shared Gutenberg books (licence text stripped)
    python bench/bench_memory.py --words 100000   # a quick check

Each size runs `ulmfit pretrain` in a fresh process under its own empty cache folder, with one torch thread. Two figures:
the peak RSS of the largest single process (the command or one of its tokenizer workers; the kernel's RUSAGE_CHILDREN
maximum), and the peak of the whole process tree's summed RSS, sampled every 0.2 s from /proc. Not a test."""
import argparse, json, os, resource, subprocess, sys, tempfile, threading, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, write_md, save_json, RESULTS
from bench_tok_workers import _descendants_rss_mb
from ulmfit_ext.core import dataset_path
from ulmfit_ext.readers import read_texts
from ulmfit_ext.corpus import strip_gutenberg, paragraphs

def base_corpus(words:int, dest:Path) -> int:
    "The first `words` words of the shared Gutenberg books, one paragraph a line, a blank line between; the words written"
    src = dataset_path('gutenberg_books')
    if src is None: sys.exit('../shared/datasets/gutenberg_books is not on this machine (set ULMFIT_DATA)')
    out, n = [], 0
    for doc in read_texts(src/'gutenberg_ece451.tar.xz'):
        for p in paragraphs(strip_gutenberg(doc)[0]):
            out.append(p); n += len(p.split())
            if n >= words: break
        if n >= words: break
    dest.write_text('\n\n'.join(out) + '\n')
    return n

def run_measured(cmd, env) -> dict:
    "Run `cmd` in a fresh Python parent: (largest process's peak RSS, sampled peak of the tree's summed RSS, seconds, exit code)"
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print('RSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
    t0, peak = time.time(), [0.]
    p = subprocess.Popen([sys.executable, '-c', code, *map(str, cmd)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    def sample():
        while p.poll() is None:
            peak[0] = max(peak[0], _descendants_rss_mb(p.pid)); time.sleep(0.2)
    th = threading.Thread(target=sample, daemon=True); th.start()
    out, err = p.communicate(); th.join()
    line = next(l for l in out.splitlines()[::-1] if l.startswith('RSS '))
    _, kb, rc = line.split()
    if int(rc): sys.exit(f"`{' '.join(map(str, cmd[:3]))}` failed ({rc}):\n{err[-3000:]}")
    return dict(max_process_mb=int(kb)/1024, tree_peak_mb=peak[0], seconds=time.time()-t0)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--words', type=int, default=1_000_000, help='size of the 1x corpus in words')
    p.add_argument('--sizes', default='1,4,16', help='multiples of the 1x corpus')
    p.add_argument('--threads', type=int, default=1, help='torch threads of each run (recorded)')
    p.add_argument('--report-only', action='store_true', help='write the table from the rows in memory.json, running nothing')
    args = p.parse_args()
    exe = Path(sys.executable).parent/'ulmfit'
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get('BENCH_TMP')) as d:
        d = Path(d); base = d/'base.txt'
        n = 0 if args.report_only else base_corpus(args.words, base)
        text = '' if args.report_only else base.read_text()
        for k in ([] if args.report_only else map(int, args.sizes.split(','))):
            f = d/f'corpus_{k}x.txt'; f.write_text('\n'.join([text] * k))
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), ULMFIT_CACHE=str(d/f'cache_{k}x'))
            cmd = [exe, 'pretrain', f, '--out', d/f'out_{k}x', '--preset', 'tiny', '--epochs', '1', '--max-tokens', str(10**10)]
            r = run_measured(cmd, env)
            m = json.loads((d/f'out_{k}x'/'metrics.json').read_text())
            r.update(size=k, words=n*k, mb_on_disk=f.stat().st_size/2**20, train_tokens=m.get('data', {}).get('train_tokens'),
                     date=time.strftime('%Y-%m-%d'), command='python bench/bench_memory.py ' + ' '.join(sys.argv[1:]))
            rows.append(r); print(json.dumps(r), flush=True)
    f = RESULTS/'memory.json'   # rows of other sizes from an earlier run (same --words) are kept
    old = [r for r in (json.loads(f.read_text()) if f.exists() else []) if (args.report_only or r['words'] == n*r['size']) and r['size'] not in {x['size'] for x in rows}]
    rows = sorted(old + rows, key=lambda r: r['size'])
    base_mb = next((r['max_process_mb'] for r in rows if r['size'] == 1), rows[0]['max_process_mb'])
    md = [header('Peak memory of `ulmfit pretrain` against corpus size', args),
          '| corpus | words | text MB | largest process peak RSS MB | x of 1x | whole tree peak RSS MB (sampled) | seconds |', '|---|---|---|---|---|---|---|']
    md += [f"| {r['size']}x | {r['words']:,} | {r['mb_on_disk']:.0f} | {r['max_process_mb']:.0f} | {r['max_process_mb']/base_mb:.2f} | {r['tree_peak_mb']:.0f} | {r['seconds']:.0f} |" for r in rows]
    md += ['', 'Rows by run: ' + '; '.join(f"{r['size']}x `{r.get('command', '?')}` ({r.get('date', '?')})" for r in rows)]
    save_json(rows, f); write_md('memory', '\n'.join(md) + '\n')
    print('\n'.join(md))

if __name__ == '__main__': main()
