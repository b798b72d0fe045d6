"""Benchmark 2: the paper's ablations (§5) at CPU scale, printed beside the paper's numbers.

    python bench/bench_ablations.py                 # full: TREC-6, 2 seeds (`--seeds 1`, the committed table: 30 min)
    python bench/bench_ablations.py --quick         # TREC-6, 1 seed, fewer epochs
    python bench/bench_ablations.py --data imdb --quick   # an IMDb subset (500 train / 500 test reviews, first 200 words): 10 min

Times measured with one torch thread on the loaded 2-core machine (load average 4-8).

Table 4: ULMFiT with and without Stage-1 pretraining. Table 6: how the LM is fine-tuned (none, full, full+discr,
full+discr+stlr), each followed by the ULMFiT classifier recipe. Table 7: how the classifier is fine-tuned (from scratch,
full, full+discr, last, chain-thaw, freez, freez+discr, freez+stlr, freez+cos, ULMFiT), all on the same full+discr+stlr LM.
As in the paper, the same hyperparameters for every variant (the paper's learning rates: 0.01 for the discriminative
variants, 0.001 otherwise; chain-thaw 0.001/0.0001) and the same epoch budget; the paper reports validation error (10 % of
train held out), so does this table (test error beside it). Writes bench/results/ablations_<data>[_quick].md/.json/.png."""
import sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
import common as C
from bench_accuracy import SETTINGS, QUICK, load

PAPER = {  # validation error %, IMDb / TREC-6 / AG (ULMFIT_REFERENCE.md §1.10)
    'Table 4': {'without pretraining': (5.63, 10.67, 5.52), 'with pretraining': (5.00, 5.69, 5.38)},
    'Table 6': {'none': (6.99, 6.38, 6.09), 'full': (5.86, 6.54, 5.61), 'full+discr': (5.55, 6.36, 5.47), 'full+discr+stlr': (5.00, 5.69, 5.38)},
    'Table 7': {'scratch': (9.93, 13.36, 6.81), 'full': (6.87, 6.86, 5.81), 'full+discr': (5.57, 6.21, 5.62), 'last': (6.49, 16.09, 8.38),
                'chain-thaw': (5.39, 6.71, 5.90), 'freez': (6.37, 6.86, 5.81), 'freez+discr': (5.39, 5.86, 6.04), 'freez+stlr': (5.04, 6.02, 5.35),
                'freez+cos': (5.70, 6.38, 5.29), 'ulmfit': (5.00, 5.69, 5.38)},
}
COL = {'imdb': 0, 'trec6': 1}

def run(args):
    df, desc = load(args.data, args.quick)
    s = {**SETTINGS[args.data], **(QUICK[args.data] if args.quick else {})}
    fwd = C.stage1_bundle(); s['cfg'] = C.stage1_config(fwd)
    res = {t: {k: [] for k in rows} for t, rows in PAPER.items()}
    log = lambda *a: print(*a, flush=True)
    def clas(lm, seed, variant='ulmfit', **kw):
        t = time.time(); r = C.evaluate(C.ulmfit_classifier(df, lm, seed, s, variant=variant, **kw), df)
        log(f"  {variant}: valid {r['valid_acc']:.4f} test {r['test_acc']:.4f} ({time.time()-t:.0f} s)"); return r
    for seed in range(args.seeds):
        log(f"seed {seed}")
        lms = {v: C.finetuned_lm(df, seed, s, bundle=fwd, variant=v) for v in PAPER['Table 6']}
        for v, lm in lms.items(): log(f" LM {v}"); res['Table 6'][v].append(clas(lm, seed))
        res['Table 4']['with pretraining'].append(res['Table 6']['full+discr+stlr'][-1])
        log(" LM without pretraining"); res['Table 4']['without pretraining'].append(clas(C.finetuned_lm(df, seed, s, bundle=None), seed))
        for v in PAPER['Table 7']:
            if v == 'ulmfit': res['Table 7'][v].append(res['Table 6']['full+discr+stlr'][-1]); continue
            log(f" classifier {v}")
            res['Table 7'][v].append(clas(lms['full+discr+stlr'], seed, v, encoder=v != 'scratch'))
    return s, desc, res

def report(args, s, desc, res):
    col = COL[args.data]; cfg = s.pop('cfg')
    out = []
    for t, rows in res.items():
        out += [f"\n## {t}\n", f"| variant | valid error % (ours) | test error % (ours) | paper valid error % ({args.data}) |", '|---|---:|---:|---:|']
        for k, rs in rows.items():
            out.append(f"| {k} | {C.mean_sd([1 - r['valid_acc'] for r in rs])} | {C.mean_sd([1 - r['test_acc'] for r in rs])} | {PAPER[t][k][col]:.2f} |")
    extra = (f"- data: {desc}\n- seeds: {list(range(args.seeds))}; ours: mean ± sd over seeds\n- Stage 1: {C.stage1_desc()}, AWD-LSTM {cfg}\n"
             f"- settings: { {k: v for k, v in s.items() if k != 'minilm'} } (lr of each Table-7 variant: the paper's, see `clas_variants`)\n")
    md = C.header(f"The paper's ablations at CPU scale: {args.data}{' (quick)' if args.quick else ''}", args, extra) + '\n'.join(out) + '\n'
    name = f"ablations_{args.data}{'_quick' if args.quick else ''}"
    C.write_md(name, md)
    C.save_json(dict(settings=s, desc=desc, results={t: C.without_probs(rows) for t, rows in res.items()}), C.RESULTS/f'{name}.json')
    _plot(res, col, C.RESULTS/f'{name}.png', args)
    print(md)

def _plot(res, col, path, args):
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    fig, axs = plt.subplots(1, 3, figsize=(15, 4), gridspec_kw=dict(width_ratios=[2, 4, 10]))
    for ax, (t, rows) in zip(axs, res.items()):
        ks = list(rows); x = np.arange(len(ks))
        ax.bar(x - 0.2, [100 * (1 - np.mean([r['valid_acc'] for r in rows[k]])) for k in ks], 0.4, label='ours (valid)')
        ax.bar(x + 0.2, [PAPER[t][k][col] for k in ks], 0.4, label='paper (valid)')
        ax.set_xticks(x); ax.set_xticklabels(ks, rotation=40, ha='right'); ax.set_title(t); ax.set_ylabel('error %')
    axs[0].legend(); fig.suptitle(f"Ablations, {args.data}: our validation error beside the paper's (full-size models)"); fig.tight_layout(); fig.savefig(path, dpi=90)

if __name__ == '__main__':
    a = C.parse_bench(C.bench_parser(__doc__, 'one seed and fewer epochs', 2))
    report(a, *run(a))
