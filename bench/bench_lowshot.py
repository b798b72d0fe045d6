"""Benchmark 3: low-shot curves (the paper's Figure 3): error against the number of labelled training examples, for
ULMFiT with the LM fine-tuned on the labelled texts only ("supervised") and on all the task's text including texts whose
labels are not used ("semi-supervised"), against the same classifier trained from scratch and TF-IDF + logistic regression.

    python bench/bench_lowshot.py                          # TREC-6: 100, 200, 500, 1000, all (4,906) labels, 1 seed: 23 min
    python bench/bench_lowshot.py --quick                  # TREC-6: 100, 500, all; fewer epochs
    python bench/bench_lowshot.py --data imdb --quick --unsup 1000   # IMDb subset: 100, 200, 450 labels + 1,000 unlabelled reviews: 24 min
    (times with one torch thread on the loaded 2-core machine, load average 4-8)

Subsets are balanced over labels and seeded; the validation split (10 % of the official training set) and the test set
are fixed for every size, as in the paper. The classifier's batch size shrinks (n/10, at least 16) and its epoch count grows for small sets so
every run gets at least `MIN_STEPS` optimizer steps (same rule for every AWD-LSTM contender). The from-scratch learning rate is fixed at 0.03 (the
best of 0.003/0.01/0.03 on the validation split in a trial run with a smaller 32/64 encoder; `bench_accuracy.py`'s own sweep later preferred 0.01
on the full training set), ULMFiT's at the paper's 0.01. Writes bench/results/lowshot_<data>[_quick].md/.json/.png."""
import math, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
import common as C
from bench_accuracy import SETTINGS, QUICK, load

SIZES = {'trec6': [100, 200, 500, 1000, None], 'imdb': [100, 200, 500, None]}
QUICK_SIZES = {'trec6': [100, 500, None], 'imdb': [100, 200, None]}
SCRATCH_LR, MIN_STEPS = 3e-2, 150

def _small(n, s) -> dict:
    "Settings for `n` labelled examples: batch size n/10 (16 to the setting's), epochs raised so there are at least MIN_STEPS steps"
    bs = int(min(s['bs'], max(16, n // 10)))
    return {**s, 'bs': bs, 'clas_epochs': int(min(60, max(s['clas_epochs'], math.ceil(MIN_STEPS / math.ceil(n / bs)))))}

def run(args):
    df, desc = load(args.data, args.quick)
    s = {**SETTINGS[args.data], **(QUICK[args.data] if args.quick else {})}
    if args.data == 'imdb' and args.unsup:   # unlabelled reviews for the semi-supervised LM, cut like the labelled ones
        u = C.imdb_unsup(args.unsup)
        if args.quick: u = u.assign(text=u.text.str.split().str[:200].str.join(' '))
        df = C.pd.concat([df, u], ignore_index=True); desc += f" + {len(u)} unlabelled reviews (split 'unsup', LM only)"
    fwd = C.stage1_bundle(); s['cfg'] = C.stage1_config(fwd)
    sizes = (QUICK_SIZES if args.quick else SIZES)[args.data]
    n_all = int((df.split == 'train').sum())
    log = lambda *a: print(*a, flush=True)
    rows = []
    for seed in range(args.seeds):
        semi_lm = C.finetuned_lm(df, seed, s, bundle=fwd, semi=True)     # all task text: one LM for every size
        for n in sorted({min(n or n_all, n_all) for n in sizes}):   # 'all' (None) and sizes above the training set: the whole set
            d = C.balanced_subset(df, n, seed); se = _small(n, s)
            row = dict(seed=seed, n=n, bs=se['bs'], epochs=se['clas_epochs']); t = time.time()
            sup_text = d[d.split == 'train'].assign(split='train')       # supervised: the n labelled training texts only
            sup_lm = C.finetuned_lm(sup_text, seed, s, bundle=fwd)
            row['ulmfit supervised'] = C.evaluate(C.ulmfit_classifier(d, sup_lm, seed, se), d)['test_acc']
            row['ulmfit semi-supervised'] = C.evaluate(C.ulmfit_classifier(d, semi_lm, seed, se), d)['test_acc']
            row['scratch'] = C.evaluate(C.ulmfit_classifier(d, semi_lm, seed, se, variant='scratch', lr=SCRATCH_LR, encoder=False), d)['test_acc']
            row['tfidf'] = C.tfidf(d)['test_acc']; row['seconds'] = time.time() - t
            rows.append(row); log(f"seed {seed} n={n}: " + ', '.join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float) and k != 'seconds') + f" ({row['seconds']:.0f} s)")
    C.save_json(dict(rows=rows), C.RESULTS/f"lowshot_{args.data}{'_quick' if args.quick else ''}.raw.json")
    return s, desc, rows

KEYS = ('ulmfit supervised', 'ulmfit semi-supervised', 'scratch', 'tfidf')

def report(args, s, desc, rows):
    cfg = s.pop('cfg'); df = C.pd.DataFrame(rows)
    g = df.groupby('n')
    lines = ['| labelled examples | classifier batch size, epochs | ' + ' | '.join(f'{k} test error %' for k in KEYS) + ' |', '|---:|---:|' + '---:|' * len(KEYS)]
    for n, d in g: lines.append(f"| {n} | {d.bs.iloc[0]}, {d.epochs.iloc[0]} | " + ' | '.join(C.mean_sd(1 - d[k].values) for k in KEYS) + ' |')
    extra = (f"- data: {desc}\n- seeds: {sorted(df.seed.unique().tolist())}\n- Stage 1: {C.stage1_desc()}, AWD-LSTM {cfg}\n"
             f"- settings: { {k: v for k, v in s.items() if k != 'minilm'} }; classifier batch size n/10 (16 to {s['bs']}) and at least {MIN_STEPS} classifier steps per run; scratch lr {SCRATCH_LR}\n"
             "- supervised: LM fine-tuned on the labelled training texts only; semi-supervised: on all non-test text (the rest of train, valid" + (", unlabelled reviews" if args.data == 'imdb' else '') + ")\n")
    md = C.header(f"Low-shot learning: {args.data}{' (quick)' if args.quick else ''}", args, extra) + '\n' + '\n'.join(lines) + '\n'
    name = f"lowshot_{args.data}{'_quick' if args.quick else ''}"
    C.write_md(name, md); C.save_json(dict(settings=s, desc=desc, rows=rows), C.RESULTS/f'{name}.json')
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, m in zip(KEYS, 'os^x'):
        e = g[k].mean(); ax.plot(e.index, 100 * (1 - e.values), marker=m, label=k)
    ax.set_xscale('log'); ax.set_xlabel('labelled training examples (log scale)'); ax.set_ylabel('test error %'); ax.legend()
    ax.set_title(f"{args.data}: error against the number of labels"); fig.tight_layout(); fig.savefig(C.RESULTS/f'{name}.png', dpi=90)
    print(md)

if __name__ == '__main__':
    p = C.bench_parser(__doc__, 'fewer sizes and epochs', 1)
    p.add_argument('--unsup', type=int, default=2000, help='IMDb: unlabelled reviews for the semi-supervised LM')
    a = C.parse_bench(p)
    report(a, *run(a))
