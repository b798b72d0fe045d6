"""Benchmark 1: test accuracy of ULMFiT (this package; forward, and forward+backward ensemble) against fastai's stock
recipe on the same pretrained LM and epoch budget, an AWD-LSTM classifier trained from scratch (learning rate chosen on the
validation split), TF-IDF + logistic regression (C chosen on the validation split), and all-MiniLM-L6-v2 fine-tuned end to end.

    python bench/bench_accuracy.py --data trec6            # full: 3 seeds, official TREC-6 split (see below)
    python bench/bench_accuracy.py --data trec6 --quick    # 1 seed, fewer epochs
    python bench/bench_accuracy.py --data imdb --quick     # 1 seed, a 500/500 IMDb subset cut to 200 words
    python bench/bench_accuracy.py --data imdb             # 3 seeds, the full 25k/25k IMDb (many hours on 2 CPU cores)

Measured running times (one torch thread per process, other jobs on the 2 cores beside them, load average 4-8): the full
TREC-6 run took 72 min for ULMFiT/stock/scratch/TF-IDF (`--skip minilm`) and 70 min for MiniLM alone
(`--skip ulmfit stock scratch tfidf`), run side by side; `--data imdb --quick` took 25 min. `--data trec6 --quick` was not
timed (estimate: a quarter of the full run). The first run also pretrains the two Stage-1 LMs: 20-40 min each on one core.

Stage 1 is the benchmarks' Gutenberg LM (`bench/common.py`, pretrained once and cached; the first run pretrains it).
Every contender sees the same rows: train (90 % of the official training set), valid (the other 10 %, stratified, seed 0:
used for choosing learning rates / C and for early information only) and the official test set; the LMs are fine-tuned
on the train+valid text only (never on test text). Writes bench/results/accuracy_<data>[_quick].md/.json/.png."""
import os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import numpy as np, pandas as pd
import common as C

SETTINGS = {  # same for every AWD-LSTM contender; cfg comes from the Stage-1 bundle
    'trec6': dict(bs=64, bptt=70, max_vocab=30_000, drop_mult=0.5, lm_epochs=10, lm_lr=1e-2, clas_epochs=12, clas_lr=1e-2,
                  minilm=dict(epochs=2, lr=1e-4, bs=32, max_len=64)),
    'imdb':  dict(bs=32, bptt=70, max_vocab=30_000, drop_mult=0.5, lm_epochs=2, lm_lr=1e-2, clas_epochs=6, clas_lr=1e-2,
                  minilm=dict(epochs=2, lr=5e-5, bs=16, max_len=256)),
}
QUICK = {'trec6': dict(lm_epochs=5, clas_epochs=8, minilm=dict(epochs=1, lr=1e-4, bs=32, max_len=64)), 'imdb': dict(minilm=dict(epochs=1, lr=5e-5, bs=16, max_len=256))}
SCRATCH_LRS = (3e-3, 1e-2, 3e-2)   # from-scratch classifier: lr picked on the validation split (seed 0)
CLAS_LRS = (1e-2, 3e-2)            # ULMFiT and stock classifiers: the paper's 0.01 or 0.03, picked on the validation split (seed 0, forward)
CONTENDERS = ('ulmfit', 'stock', 'scratch', 'tfidf', 'minilm')

def load(data, quick, seed=0):
    df, desc = _load(data, quick, seed)
    if os.environ.get('BENCH_SMOKE'):   # a check that the script runs end to end: a few hundred rows, not a result
        df = pd.concat([df[df.split == k].sample(n=min(n, (df.split == k).sum()), random_state=0) for k, n in (('train', 300), ('valid', 100), ('test', 100))])
        SETTINGS[data].update(lm_epochs=1, clas_epochs=4); QUICK[data].update(lm_epochs=1, clas_epochs=4, minilm=dict(epochs=1, lr=1e-4, bs=32, max_len=32))
        desc = 'SMOKE TEST (BENCH_SMOKE set): a few hundred rows of ' + desc
    return df, desc

def _load(data, quick, seed=0):
    if data == 'trec6':
        df = C.trec6(seed=seed); n = df.split.value_counts()
        return df, f"TREC-6 official split: {n['train']:,} train / {n['valid']:,} valid (10 % of train, stratified, seed 0) / {n['test']:,} test"
    n_tr, n_te, words = (500, 500, 200) if quick else (None, None, None)
    df = C.imdb(n_train=n_tr, n_test=n_te, seed=seed)
    if words: df['text'] = df.text.str.split().str[:words].str.join(' ')
    d = df.split.value_counts()
    desc = (f"IMDb {'quick subset: balanced random ' + str(n_tr) + ' train / ' + str(n_te) + ' test reviews (seed 0), each cut to its first ' + str(words) + ' words' if quick else 'official 25k train / 25k test'}"
            f": {d.get('train', 0)} train / {d.get('valid', 0)} valid / {d.get('test', 0)} test")
    return df, desc

def run(args):
    df, desc = load(args.data, args.quick)
    s = {**SETTINGS[args.data], **(QUICK[args.data] if args.quick else {})}
    fwd = C.stage1_bundle(); bwd = C.stage1_bundle(backwards=True) if 'ulmfit' not in args.skip else None
    s['cfg'] = C.stage1_config(fwd)
    seeds = list(range(args.seeds))
    res = {k: [] for k in ('ulmfit fwd', 'ulmfit bwd', 'ulmfit fwd+bwd', 'fastai stock', 'scratch', 'tfidf', 'minilm')}
    times = {k: [] for k in res}
    log = lambda *a: print(*a, flush=True)
    if 'scratch' not in args.skip:   # the scratch learning rate, chosen on the validation split with seed 0
        vocab_lm = C.finetuned_lm(df, 0, {**s, 'lm_epochs': 0})
        sweep = {lr: C.evaluate(C.ulmfit_classifier(df, vocab_lm, 0, s, variant='scratch', lr=lr, encoder=False), df)['valid_acc'] for lr in SCRATCH_LRS}
        s['scratch_lr'] = max(sweep, key=sweep.get); log(f"scratch lr sweep (valid acc): {sweep} -> {s['scratch_lr']}")
    if 'ulmfit' not in args.skip or 'stock' not in args.skip:
        lm0 = C.finetuned_lm(df, 0, s, bundle=fwd)
        sweep = {lr: C.evaluate(C.ulmfit_classifier(df, lm0, 0, s, lr=lr), df)['valid_acc'] for lr in CLAS_LRS}
        s['clas_lr'] = max(sweep, key=sweep.get); log(f"ULMFiT classifier lr sweep (valid acc): {sweep} -> {s['clas_lr']}")
    for seed in seeds:
        if 'ulmfit' not in args.skip:
            probs = []
            for name, b, back in (('ulmfit fwd', fwd, False), ('ulmfit bwd', bwd, True)):
                t = time.time(); lm = C.finetuned_lm(df, seed, s, bundle=b, backwards=back)
                r = C.evaluate(C.ulmfit_classifier(df, lm, seed, s), df); times[name].append(time.time() - t)
                res[name].append(r); probs.append(r['probs']); log(f"seed {seed} {name}: valid {r['valid_acc']:.4f} test {r['test_acc']:.4f} ({times[name][-1]:.0f} s)")
            te = df[df.split == 'test']
            res['ulmfit fwd+bwd'].append(dict(test_acc=C._accuracy((probs[0] + probs[1]) / 2, te.label.values, r['labels'])))
            times['ulmfit fwd+bwd'].append(times['ulmfit fwd'][-1] + times['ulmfit bwd'][-1])
            log(f"seed {seed} ulmfit fwd+bwd: test {res['ulmfit fwd+bwd'][-1]['test_acc']:.4f}")
        if 'stock' not in args.skip:
            t = time.time(); r = C.evaluate(C.stock_fastai(df, seed, s, fwd), df); times['fastai stock'].append(time.time() - t)
            res['fastai stock'].append(r); log(f"seed {seed} fastai stock: valid {r['valid_acc']:.4f} test {r['test_acc']:.4f}")
        if 'scratch' not in args.skip:
            t = time.time(); r = C.evaluate(C.ulmfit_classifier(df, vocab_lm, seed, s, variant='scratch', lr=s['scratch_lr'], encoder=False), df)
            times['scratch'].append(time.time() - t); res['scratch'].append(r); log(f"seed {seed} scratch: valid {r['valid_acc']:.4f} test {r['test_acc']:.4f}")
        if 'minilm' not in args.skip:
            t = time.time(); r = C.minilm(df, seed, log=log, **s['minilm']); times['minilm'].append(time.time() - t)
            res['minilm'].append(r); log(f"seed {seed} MiniLM: valid {r['valid_acc']:.4f} test {r['test_acc']:.4f}")
    if 'tfidf' not in args.skip:   # deterministic: one fit
        t = time.time(); r = C.tfidf(df); times['tfidf'].append(time.time() - t); res['tfidf'].append(r); log(f"TF-IDF: C={r['C']} test {r['test_acc']:.4f}")
    part = '+'.join(c for c in CONTENDERS if c not in args.skip)   # runs of different contenders (e.g. in parallel) merge in the report
    C.save_json(dict(settings=s, desc=desc, seeds=seeds, results=C.without_probs(res), times=times),
                C.RESULTS/f"{_name(args)}.{part}.raw.json")
    return s, desc, seeds, res, times

NOTES = {'ulmfit fwd': 'this package: `finetune_lm` (discr + STLR) then `train_classifier` (gradual unfreezing, discr, STLR)',
         'ulmfit bwd': 'the same on reversed text, from the backward Stage-1 LM',
         'ulmfit fwd+bwd': 'mean of the two models\' probabilities (the paper\'s ensemble); time = both',
         'fastai stock': '`language_model_learner(...).fine_tune` + `text_classifier_learner(...).fine_tune`, same Stage-1 weights, data, lrs and epochs',
         'scratch': 'same classifier and recipe without pretraining: random encoder, all layers trained with STLR; lr chosen on valid',
         'tfidf': 'word 1-2-grams, sublinear tf, logistic regression; C chosen on valid',
         'minilm': 'all-MiniLM-L6-v2 fine-tuned end to end, mean pooling + linear head'}

def _name(args): return f"accuracy_{args.data}{'_quick' if args.quick else ''}"

def _merged(args, s, desc, seeds, res, times):
    "Results of this run plus those of other runs of the same benchmark with other contenders (`*.raw.json` beside the results)"
    import json
    for f in sorted(C.RESULTS.glob(f"{_name(args)}.*.raw.json")):
        r = json.loads(f.read_text())
        if r['desc'] != desc or r['seeds'] != seeds: continue
        for k, v in r['results'].items():
            if v and not res[k]: res[k], times[k] = v, r['times'][k]; print(f"merged {k} from {f.name}")
        s = {**r['settings'], **s} if 'ulmfit' not in f.name else {**s, **r['settings']}   # the ULMFiT run's swept lrs win
    return s, res, times

def report(args, s, desc, seeds, res, times):
    s, res, times = _merged(args, s, desc, seeds, res, times)
    rows = ['| contender | test error % (mean ± sd over seeds) | test acc per seed | valid acc (mean) | train+predict s (median) | what |', '|---|---:|---|---:|---:|---|']
    for k, rs in res.items():
        if not rs: continue
        accs = [r['test_acc'] for r in rs]
        va = [r['valid_acc'] for r in rs if 'valid_acc' in r]
        rows.append(f"| {k} | {C.mean_sd([1 - a for a in accs])} | {', '.join(f'{a:.3f}' for a in accs)} | {np.mean(va):.3f} | {np.median(times[k]):.0f} | {NOTES[k]} |" if va else
                    f"| {k} | {C.mean_sd([1 - a for a in accs])} | {', '.join(f'{a:.3f}' for a in accs)} | | {np.median(times[k]):.0f} | {NOTES[k]} |")
    pub = s.pop('cfg', None)
    extra = (f"- data: {desc}\n- seeds: {seeds} (TF-IDF is deterministic: one fit)\n- Stage 1: {C.stage1_desc()}, AWD-LSTM {pub}\n"
             + (f"- this report was rebuilt (`--report-only`) from the raw results of the runs: {', '.join(f.name for f in sorted(C.RESULTS.glob(_name(args) + '.*.raw.json')))}\n" if getattr(args, 'report_only', False) else '')
             + f"- settings (every AWD-LSTM contender): { {k: v for k, v in s.items() if k != 'minilm'} }\n- MiniLM: {s['minilm']}\n")
    md = C.header(f"Accuracy against the alternatives: {args.data}{' (quick)' if args.quick else ''}", args, extra) + '\n' + '\n'.join(rows) + '\n'
    name = _name(args)
    C.write_md(name, md)
    C.save_json(dict(settings=s, desc=desc, seeds=seeds, results=C.without_probs(res), times=times), C.RESULTS/f'{name}.json')
    _plot(res, times, C.RESULTS/f'{name}.png', args)
    print(md)

def _plot(res, times, path, args):
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    ks = [k for k in res if res[k]]
    err = [100 * (1 - np.mean([r['test_acc'] for r in res[k]])) for k in ks]
    sd = [100 * np.std([r['test_acc'] for r in res[k]], ddof=1) if len(res[k]) > 1 else 0 for k in ks]
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
    ax[0].barh(ks, err, xerr=sd, color='tab:blue'); ax[0].set_xlabel('test error % (lower is better)'); ax[0].invert_yaxis()
    ax[1].barh(ks, [np.median(times[k]) for k in ks], color='tab:gray'); ax[1].set_xlabel('seconds per run (train + predict, median)'); ax[1].invert_yaxis()
    fig.suptitle(f"{args.data}{' (quick)' if args.quick else ''}: test error and training cost"); fig.tight_layout(); fig.savefig(path, dpi=90)

if __name__ == '__main__':
    p = C.bench_parser(__doc__, 'one seed and fewer epochs (TREC-6), or a 500 train / 500 test subset cut to 200 words (IMDb)', 3)
    p.add_argument('--skip', nargs='*', default=[], choices=CONTENDERS, help='contenders to leave out')
    p.add_argument('--report-only', action='store_true', help='rewrite the report from the raw results of earlier runs (no training); pass the runs\' --threads')
    a = C.parse_bench(p)
    if a.report_only:
        import json
        raw = [json.loads(f.read_text()) for f in sorted(C.RESULTS.glob(f"{_name(a)}.*.raw.json"), key=lambda f: 'ulmfit' not in f.name)]  # its settings hold the swept lrs
        if not raw: sys.exit(f"error: no raw results {_name(a)}.*.raw.json in {C.RESULTS}: run the benchmark first.")
        empty = {k: [] for k in raw[0]['results']}
        report(a, dict(raw[0]['settings']), raw[0]['desc'], raw[0]['seeds'], empty, {k: [] for k in empty})
    else: report(a, *run(a))
