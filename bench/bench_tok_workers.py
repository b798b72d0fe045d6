"""Benchmark: `predict_texts(..., n_workers=k)` on 10,000 real IMDb reviews: tokenization in this process (k=0) or in 1 or 2
worker processes that tokenize ahead while this process runs the model.

    python bench/bench_tok_workers.py            # 10,000 test reviews, the small 64/128/2 classifier (random weights)
    python bench/bench_tok_workers.py --quick    # 2,000

Each setting runs in its own fresh process (one torch thread), so its peak memory is its own; the workers' peak is
reported separately (the summed RSS of its descendant processes, sampled). The probabilities of every setting are compared with k=0's. Not a test."""
import argparse, json, resource, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import imdb_reviews, header, write_md, save_json, RESULTS

def _descendants_rss_mb(pid) -> float:
    "Summed resident memory (MB) of every descendant of process `pid` (the forkserver and its workers), from /proc"
    kids, procs = {}, []
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try:
            st = (d/'stat').read_text(); ppid = int(st.rsplit(')', 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(d.name))
        except (OSError, ValueError, IndexError): pass
    todo, tot = list(kids.get(pid, [])), 0.
    while todo:
        c = todo.pop(); todo += kids.get(c, [])
        try: tot += int((Path(f'/proc/{c}/statm')).read_text().split()[1]) * 4096 / 2**20
        except OSError: pass
    return tot

def worker(a):
    import os, threading
    torch.set_num_threads(1)
    peak, done = [0.], threading.Event()
    def watch():
        while not done.wait(0.25): peak[0] = max(peak[0], _descendants_rss_mb(os.getpid()))
    threading.Thread(target=watch, daemon=True).start()
    from ulmfit_ext.inference import predict_probs, as_predictor
    texts = imdb_reviews(a.n).text.tolist()
    p = as_predictor(a.bundle)
    t = time.perf_counter()
    probs = predict_probs(p, texts, n_workers=a.worker_n, progress=False)
    secs = time.perf_counter() - t
    done.set()
    np.save(Path(a.bundle).parent/f'probs_{a.worker_n}.npy', probs)
    print(json.dumps(dict(n_workers=a.worker_n, n=len(texts), secs=secs, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024,
                          workers_peak_mb=peak[0])))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=10000)
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--worker-n', type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument('--bundle', help=argparse.SUPPRESS)
    a = ap.parse_args(); a.threads = 1
    if a.worker_n is not None: return worker(a)
    if a.quick: a.n = 2000
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_profile import make_predictor, SMALL_NAME
    from ulmfit_ext.bundle import save_bundle
    texts = imdb_reviews(a.n).text.tolist()
    with tempfile.TemporaryDirectory() as d:
        p = make_predictor(dict(emb_sz=64, n_hid=128, n_layers=2), texts)
        b = Path(d)/'clas'
        save_bundle(b, p.model, p.vocab, 'classifier', tokenizer=p.tokenizer, labels=p.labels)
        rows = []
        for k in (0, 1, 2):
            r = subprocess.run([sys.executable, __file__, '--worker-n', str(k), '--bundle', str(b), '--n', str(a.n)], capture_output=True, text=True)
            if r.returncode: sys.exit(r.stderr[-3000:])
            rows.append(json.loads(r.stdout.strip().splitlines()[-1])); print(rows[-1], flush=True)
        base = np.load(b.parent/'probs_0.npy')
        for r in rows: r['max_dp'] = float(np.abs(np.load(b.parent/f"probs_{r['n_workers']}.npy") - base).max())
    md = header('Tokenizer worker processes: `predict_texts(n_workers=...)`', a,
                f"- data: {a.n:,} random IMDb test reviews (aclImdb, seed 0); classifier: {SMALL_NAME}, random weights, bundle with fastai's spaCy tokenizer\n"
                "- one fresh process per setting, one torch thread; chunks of 4,096 texts, worker pieces of 256; this machine has 2 cores and another job used one of them during the run\n")
    md += "| n_workers | seconds | docs/s | × n_workers=0 | peak RSS MB (main) | peak RSS MB (all workers + forkserver, sampled every 0.25 s) | max \\|Δp\\| vs 0 |\n|---:|---:|---:|---:|---:|---:|---:|\n"
    for r in rows:
        md += f"| {r['n_workers']} | {r['secs']:.1f} | {r['n']/r['secs']:.0f} | {rows[0]['secs']/r['secs']:.2f} | {r['peak_mb']:.0f} | {r['workers_peak_mb'] if r['n_workers'] else 0:.0f} | {r['max_dp']:.1e} |\n"
    write_md('tok_workers', md); save_json(rows, RESULTS/'tok_workers.json')
    print(md)

if __name__ == '__main__': main()
