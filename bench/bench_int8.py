"""Benchmark: int8 CPU inference (`predict_texts(..., int8=True)`) against fp32 and against fastai's `test_dl` + `get_preds`,
side by side in one run: accuracy, docs/s and peak memory, on TREC-6 (test set) and the IMDb sample (its 200 validation
reviews), for small (64/128/2) and paper-size (400/1152/3) AWD-LSTM classifiers.

    python bench/bench_int8.py                    # small models trained here on both sets; paper-size trained 1 epoch on TREC-6
    python bench/bench_int8.py --quick            # fewer epochs, paper-size on TREC-6 only
    python bench/bench_int8.py --paper-imdb-epochs 1   # also train the paper-size IMDb model (else random weights: speed and memory only)

The classifiers are trained from scratch with this package (`clas_learner` + `train_classifier(variant='scratch')`), briefly:
the point is the *change* int8 makes, not the accuracy itself. Each method runs in its own fresh subprocess (one torch
thread, tokenization in-process for all three), so peak memory (VmHWM) is its own; "peak - start" subtracts the RSS
before prediction (model loaded). Not a test: nothing is asserted."""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import trec6, shared, imdb_reviews, header, write_md, save_json, RESULTS, _quiet

SMALL, PAPER = dict(emb_sz=64, n_hid=128, n_layers=2), dict(emb_sz=400, n_hid=1152, n_layers=3)
SMOKE = bool(os.environ.get('BENCH_SMOKE'))   # a check of the script (tests/test_bench.py), not a result: a smaller "paper" model, 1 epoch, TREC-6 only
if SMOKE: PAPER = dict(emb_sz=40, n_hid=80, n_layers=3)

def data(name) -> tuple:
    "(training frame with is_valid, evaluation frame) of a data set; 'imdb_test': the IMDb sample's training reviews, 1,000 aclImdb test reviews"
    if name == 'imdb_test': return data('imdb')[0], imdb_reviews(1000, seed=2).assign(label=lambda d: d.label.map({'pos': 'positive', 'neg': 'negative'}))
    if name == 'trec6':
        df = trec6()
        return df[df.split != 'test'].assign(is_valid=lambda d: d.split == 'valid'), df[df.split == 'test']
    df = pd.read_csv(shared('imdb_sample')/'texts.csv')
    tr = df[~df.is_valid].reset_index(drop=True)
    return tr.assign(is_valid=np.arange(len(tr)) % 10 == 0), df[df.is_valid]   # the 200 `is_valid` reviews are the evaluation set; every 10th other one validates

def train(name, cfg, epochs, out, seed=0):
    "Train a classifier of sizes `cfg` from scratch on data set `name` for `epochs` (0: random weights) and save its bundle to `out`; seconds"
    from fastai.text.all import set_seed
    from ulmfit_ext.data import lm_dls, clas_dls
    from ulmfit_ext.learner import clas_learner, train_classifier
    from ulmfit_ext.bundle import save_classifier_bundle
    tr, _ = data(name)
    if name == 'imdb': tr = tr.assign(text=tr.text.str.split().str[:200].str.join(' '))   # trained on each review's first 200 words, as bench_accuracy's IMDb quick mode
    set_seed(seed)
    t = time.time()
    vocab = lm_dls(tr[['text']], bs=32, bptt=70, progress=False, seed=seed, max_vocab=30000 if name == 'imdb' else 60000).vocab
    dls = clas_dls(tr, vocab=vocab, valid_col='is_valid', bs=32 if name == 'imdb' else 64, bptt=70, progress=False, seed=seed)
    learn = _quiet(clas_learner(dls, config=cfg, drop_mult=0.5 if name == 'imdb' else 1.))
    if epochs: train_classifier(learn, epochs, lr=1e-2 if cfg is PAPER or name == 'imdb' else 3e-2, variant='scratch')   # IMDb: bench_accuracy's scratch settings
    save_classifier_bundle(learn, out)
    return time.time() - t

def rss_mb() -> float:
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20

def peak_mb() -> float:
    "Peak RSS of this process (VmHWM; unlike ru_maxrss it is not inherited from the parent across exec)"
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024

def fastai_learner(bundle, texts):
    "fastai's own inference path over the bundle's weights: `TextBlock` (spaCy tokenizer, default rules, the bundle's vocabulary) + `TextLearner.get_preds`"
    from fastai.text.all import TextBlock, CategoryBlock, DataBlock, ColReader, RandomSplitter, WordTokenizer, TextLearner, CrossEntropyLossFlat
    from ulmfit_ext.bundle import load_bundle
    b = load_bundle(bundle)
    df = pd.DataFrame({'text': texts[:64], 'label': [b.labels[i % len(b.labels)] for i in range(min(64, len(texts)))]})
    db = DataBlock(blocks=(TextBlock.from_df('text', tok=WordTokenizer(), vocab=b.vocab, seq_len=70, n_workers=0), CategoryBlock(vocab=b.labels)),
                   get_x=ColReader('text'), get_y=ColReader('label'), splitter=RandomSplitter(0.2, seed=0))
    dls = db.dataloaders(df, bs=64, num_workers=0)
    assert list(dls.vocab[0]) == b.vocab
    return TextLearner(dls, b.build_model(), loss_func=CrossEntropyLossFlat()), b.labels   # fastai's text learner: resets the model, keeps its first output

def worker(a):
    "Run one method in this fresh process; print a JSON line with its numbers"
    torch.set_num_threads(a.threads)
    ev = data(a.data)[1]
    texts = ev.text.tolist()
    if a.worker == 'fastai':
        learn, labels = fastai_learner(a.bundle, texts)
        before = rss_mb(); t = time.perf_counter()
        with learn.no_bar(): probs = learn.get_preds(dl=learn.dls.test_dl(texts, bs=64, num_workers=0))[0].numpy()
    else:
        from ulmfit_ext.inference import as_predictor, predict_probs
        p = as_predictor(a.bundle)
        if a.worker == 'int8': p = p.quantized()   # at load, as `predict_texts(folder, int8=True)` does
        labels = p.labels
        before = rss_mb(); t = time.perf_counter()
        probs = predict_probs(p, texts, bs=64, progress=False)
    secs = time.perf_counter() - t
    acc = float((np.array(labels)[probs.argmax(1)] == ev.label.astype(str).values).mean())
    np.save(Path(a.bundle).parent/f'probs_{a.worker}_{a.data}.npy', probs)
    print(json.dumps(dict(method=a.worker, n=len(texts), secs=secs, acc=acc, rss_before_mb=before, peak_mb=peak_mb())))

def run_worker(method, bundle, a, name) -> dict:
    cmd = [sys.executable, __file__, '--worker', method, '--bundle', str(bundle), '--data', name, '--threads', str(a.threads)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: sys.exit(f"{method} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

NAMES = dict(fastai='fastai `test_dl` + `get_preds` (fp32)', fp32='ulmfit_ext `predict_texts` fp32', int8='ulmfit_ext `predict_texts` int8')

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--small-epochs', type=int, default=6, help='epochs of the small TREC-6 classifier')
    ap.add_argument('--imdb-epochs', type=int, default=8, help='epochs of the small IMDb classifier')
    ap.add_argument('--paper-epochs', type=int, default=1, help='epochs of the paper-size TREC-6 classifier (0: random weights)')
    ap.add_argument('--paper-imdb-epochs', type=int, default=0, help='epochs of the paper-size IMDb classifier (0: random weights, accuracy not meaningful)')
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--worker', choices=('fastai', 'fp32', 'int8'), help=argparse.SUPPRESS)
    ap.add_argument('--bundle', help=argparse.SUPPRESS)
    ap.add_argument('--data', default='trec6', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker: return worker(a)
    torch.set_num_threads(a.threads)
    runs = [('trec6', 'small', SMALL, a.small_epochs), ('imdb', 'small', SMALL, a.imdb_epochs), ('trec6', 'paper', PAPER, a.paper_epochs),
            ('imdb', 'paper', PAPER, a.paper_imdb_epochs)]
    evals = {('imdb', 'small'): ('imdb', 'imdb_test')}   # the small IMDb model is also measured on 1,000 aclImdb test reviews (200 give 0.5-point steps)
    if a.quick: runs = [(d, s, c, max(1, e // 3) if s == 'small' else e) for d, s, c, e in runs[:3]]
    if SMOKE: runs = [(d, s, c, 1) for d, s, c, e in runs if d == 'trec6']
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, size, cfg, ep in runs:
            b = Path(tmp)/f'{name}-{size}'/'bundle'
            secs = train(name, cfg, ep, b)
            print(f"{name} {size}: trained {ep} epochs in {secs:.0f} s", flush=True)
            for ev in evals.get((name, size), (name,)):
              res = {m: run_worker(m, b, a, ev) for m in ('fastai', 'fp32', 'int8')}
              pr = {m: np.load(b.parent/f'probs_{m}_{ev}.npy') for m in res}
              for m, r in res.items():
                rows.append(dict(data=ev, model=f"{size} {cfg['emb_sz']}/{cfg['n_hid']}/{cfg['n_layers']}", epochs=ep, **r,
                                 docs_s=r['n']/r['secs'], max_dp=float(np.abs(pr[m] - pr['fp32']).max()), agree=float((pr[m].argmax(1) == pr['fp32'].argmax(1)).mean())))
                print(rows[-1], flush=True)
    md = header('int8 vs fp32 vs fastai: accuracy, docs/s, peak memory' + (' (SMOKE TEST: not a result)' if SMOKE else ''), a,
                "- data: TREC-6 official test set (500 questions; trained on the 5,452 training questions, 10 % of them for validation); IMDb sample "
                "(the 200 `is_valid` reviews; trained on the first 200 words of the 800 others, every 10th of them for validation, drop_mult 0.5, lr 0.01, vocabulary 30,000: bench_accuracy's IMDb scratch settings); imdb_test: 1,000 random aclImdb test reviews (seed 2) for the same small IMDb model\n"
                f"- classifiers trained here from scratch with `clas_learner` + `train_classifier(variant='scratch')`, briefly (epochs column; 0 = random weights, whose accuracy means nothing); "
                "int8 = `Predictor.quantized()` of the same bundle (LSTM and Linear layers dynamically quantized at load; the bundle stays fp32)\n"
                f"- one fresh process per method, {a.threads} torch thread(s), tokenization in-process for all; bs 64\n")
    md += ("| data | model | epochs | method | accuracy % | Δ vs fp32 (points) | max \\|Δp\\| vs fp32 | same label % | seconds | docs/s | × fastai | peak RSS MB | peak - start MB |\n"
           "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    for r in rows:
        f = next(x for x in rows if x['data'] == r['data'] and x['model'] == r['model'] and x['method'] == 'fastai')
        p = next(x for x in rows if x['data'] == r['data'] and x['model'] == r['model'] and x['method'] == 'fp32')
        md += (f"| {r['data']} | {r['model']} | {r['epochs']} | {NAMES[r['method']]} | {100*r['acc']:.1f} | {100*(r['acc']-p['acc']):+.1f} | {r['max_dp']:.1e} | {100*r['agree']:.1f} | "
               f"{r['secs']:.1f} | {r['docs_s']:.0f} | {r['docs_s']/f['docs_s']:.2f} | {r['peak_mb']:.0f} | {r['peak_mb']-r['rss_before_mb']:.0f} |\n")
    write_md('int8', md); save_json(rows, RESULTS/'int8.json')
    print(md)

if __name__ == '__main__': main()
