"""Benchmark: batch classification of many texts with `ulmfit_ext.inference.predict_texts` vs fastai's
`learn.dls.test_dl(texts)` + `learn.get_preds(dl=...)`, on the same small AWD-LSTM classifier.

    python bench/bench_inference.py                  # 20,000 texts
    python bench/bench_inference.py --quick          # 4,000 texts
    python bench/bench_inference.py --n 100000 --tok base

Texts: the reviews of ../shared/datasets/imdb_sample repeated, each copy cut to a random 5-100% of its words so lengths
vary (synthetic reviews when the data set is absent). Each method runs in its own fresh subprocess, so the peak memory
(ru_maxrss) of one does not leak into the other; the peak is also reported relative to the process's RSS just before
prediction. Prints docs/s, peak memory and the ratios (not a test: nothing is asserted)."""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch

CFG = dict(emb_sz=100, n_hid=300, n_layers=2)

def load_texts(n:int, seed:int=0) -> list:
    "`n` review texts of varied length"
    from ulmfit_ext.core import dataset_path
    p = dataset_path('imdb_sample')
    rng = np.random.default_rng(seed)
    if p is not None: base = pd.read_csv(p/'texts.csv').text.tolist()
    else:
        from ulmfit_ext.test_utils import toy_df
        base = (toy_df(1000).text + ' ').str.repeat(6).tolist()
    words = [t.split() for t in base]
    out = []
    for i in range(n):
        w = words[i % len(words)]
        out.append(' '.join(w[:max(1, int(len(w) * rng.uniform(0.05, 1.0)))]))
    return out

def build_dls(tok:str):
    "fastai TextBlock classifier DataLoaders on the first 200 reviews (deterministic vocabulary), single process"
    from fastai.text.all import TextBlock, CategoryBlock, DataBlock, ColReader, RandomSplitter, BaseTokenizer, WordTokenizer
    from ulmfit_ext.core import dataset_path
    p = dataset_path('imdb_sample')
    if p is not None: df = pd.read_csv(p/'texts.csv').iloc[:200]
    else:
        from ulmfit_ext.test_utils import toy_df
        df = toy_df(200)
    tkz = BaseTokenizer() if tok == 'base' else WordTokenizer()
    db = DataBlock(blocks=(TextBlock.from_df('text', tok=tkz, seq_len=70, n_workers=0), CategoryBlock),
                   get_x=ColReader('text'), get_y=ColReader('label'), splitter=RandomSplitter(0.2, seed=0))
    return db.dataloaders(df, bs=64, num_workers=0)

def rss_mb() -> float:
    "Current resident memory of this process (MB), from /proc"
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20

def worker(a):
    "Run one method in this (fresh) process and print a JSON line with its numbers"
    torch.set_num_threads(a.threads)
    from ulmfit_ext.learner import clas_learner
    from ulmfit_ext.bundle import load_bundle
    texts = load_texts(a.n)
    if a.worker == 'ours':
        from ulmfit_ext.inference import predict_probs, as_predictor
        pred = as_predictor(load_bundle(a.model_dir))
        before = rss_mb(); t = time.perf_counter()
        probs = predict_probs(pred, texts, bs=a.bs, progress=False)
    else:
        learn = clas_learner(build_dls(a.tok), config=CFG)
        b = load_bundle(a.model_dir)
        assert list(learn.dls.vocab[0]) == b.vocab, 'rebuilt vocabulary differs from the bundle'
        learn.model.load_state_dict(b.state_dict)
        before = rss_mb(); t = time.perf_counter()
        dl = learn.dls.test_dl(texts, bs=a.bs, num_workers=0)
        with learn.no_bar(): probs = learn.get_preds(dl=dl)[0].numpy()
    secs = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(Path(a.model_dir)/f'probs_{a.worker}.npy', probs)
    print(json.dumps(dict(method=a.worker, n=len(texts), secs=secs, rss_before_mb=before, peak_mb=peak)))

def run_worker(method, a, d) -> dict:
    cmd = [sys.executable, __file__, '--worker', method, '--model-dir', str(d), '--n', str(a.n), '--bs', str(a.bs),
           '--tok', a.tok, '--threads', str(a.threads)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: sys.exit(f"{method} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=20000, help='number of texts')
    ap.add_argument('--bs', type=int, default=64, help='batch size of both methods')
    ap.add_argument('--tok', choices=('spacy', 'base'), default='spacy', help="tokenizer: fastai's default spaCy one, or split on spaces")
    ap.add_argument('--threads', type=int, default=1, help='torch threads in each worker')
    ap.add_argument('--quick', action='store_true', help='4,000 texts')
    ap.add_argument('--worker', choices=('ours', 'fastai'), help=argparse.SUPPRESS)
    ap.add_argument('--model-dir', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker: return worker(a)
    if a.quick: a.n = 4000
    torch.set_num_threads(a.threads)
    from ulmfit_ext.learner import clas_learner
    from ulmfit_ext.bundle import save_classifier_bundle
    with tempfile.TemporaryDirectory() as d:
        torch.manual_seed(0)
        save_classifier_bundle(clas_learner(build_dls(a.tok), config=CFG), Path(d)/'clas')
        lens = np.array([len(t.split()) for t in load_texts(a.n)])
        print(f"{a.n:,} texts, {lens.sum():,} words (min {lens.min()}, median {int(np.median(lens))}, max {lens.max()}); "
              f"classifier AWD-LSTM emb {CFG['emb_sz']}, n_hid {CFG['n_hid']}, {CFG['n_layers']} layers, untrained; "
              f"{a.tok} tokenizer; bs {a.bs}; torch threads {a.threads}; one process each, no DataLoader workers")
        res = {m: run_worker(m, a, Path(d)/'clas') for m in ('ours', 'fastai')}
        po, pf = (np.load(Path(d)/'clas'/f'probs_{m}.npy') for m in ('ours', 'fastai'))
    print(f"{'method':42s} {'seconds':>9s} {'docs/s':>9s} {'peak RSS MB':>12s} {'peak - start MB':>16s}")
    names = dict(ours='ulmfit_ext predict_texts', fastai='fastai test_dl + get_preds')
    for m, r in res.items():
        print(f"{names[m]:42s} {r['secs']:9.1f} {r['n']/r['secs']:9.1f} {r['peak_mb']:12.0f} {r['peak_mb']-r['rss_before_mb']:16.0f}")
    o, f = res['ours'], res['fastai']
    print(f"throughput ratio (ours / fastai): {f['secs']/o['secs']:.2f}x; peak RSS ratio: {o['peak_mb']/f['peak_mb']:.2f}; "
          f"peak growth ratio: {(o['peak_mb']-o['rss_before_mb'])/max(f['peak_mb']-f['rss_before_mb'], 1e-9):.2f}")
    diff = np.abs(po - pf).max(1)
    print(f"agreement: max |p_ours - p_fastai| = {diff.max():.2e}; rows differing by > 1e-4: {(diff > 1e-4).sum()} of {len(diff)}")

if __name__ == '__main__': main()
