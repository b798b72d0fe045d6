"""What a user gets with no flags: test accuracy of the `ulmfit` command with every default (several seeds), with the old
defaults, with the best setting a grid search finds on the validation split, and of TF-IDF + logistic regression, on
TREC-6, the IMDb sample, SMS spam and BBC News, with one Stage-1 LM for all (the demo's cached one).

    python bench/bench_defaults.py                       # all four sets (about 3 hours on one core)
    python bench/bench_defaults.py --data trec6,sms_spam # some of them (runs of different sets merge into one report)
    python bench/bench_defaults.py --report-only         # rebuild the report from the raw results

Rows:
- defaults: `ulmfit finetune-lm train.csv --pretrained STAGE1`, `ulmfit train-classifier train.csv --lm lm`,
  `ulmfit evaluate clas test.csv`, nothing else (each seed its own Stage 2 and Stage 3);
- old defaults: the same commands with the values the defaults had before (LM: 1 epoch at 0.004, drop-mult 1;
  classifier: one epoch per layer group at 0.01, drop-mult 1, the last epoch kept); seed 0;
- best found on validation: Stage 3 from the seed-0 defaults LM with every setting of a grid (top-group rate x dropout x
  budget), the one with the best validation accuracy kept; its test accuracy is reported, the test set is not looked at
  to choose;
- TF-IDF + LR: word 1-2-grams, C chosen on a validation split of the training file.
Each data set is given to the command as a user would have it: a train.csv (the command carves its own validation split)
and a test.csv."""
import json, os, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C

SETS = ('trec6', 'imdb_sample', 'sms_spam', 'bbc')
OLD_LM = ['--epochs', '1', '--lr', '0.004', '--drop-mult', '1']
OLD_CLAS = ['--lr', '0.01', '--drop-mult', '1', '--keep', 'last', '--patience', '0', '--bs', '64']   # + --epochs (layer groups), set per run
GRIDS = dict(full=[dict(lr=lr, drop_mult=d, epochs=e) for lr in (None, 0.02, 0.04) for d in (None, 0.5, 1.0) for e in (None, 25)],
             small=[dict(lr=lr, drop_mult=d, epochs=None) for lr in (None, 0.04) for d in (None, 0.5)])   # --grid small: 4 settings

# ---- data: train.csv / test.csv as a user has them ----------------------------------------------------------------------
def _sms():
    p = C.shared('sms_spam')/'SMSSpamCollection'
    rows = [l.split('\t', 1) for l in p.read_text(encoding='utf-8').splitlines() if l.strip()]
    df = pd.DataFrame([(t, l) for l, t in rows], columns=['text', 'label'])
    te = df.groupby('label', group_keys=False).sample(frac=0.2, random_state=0)   # no official split: a seeded stratified 20 %
    return df.drop(te.index), te

def _imdb_sample():
    df = pd.read_csv(C.shared('imdb_sample')/'texts.csv')   # 800 train / 200 valid: the 200 serve as the test set here
    return df[~df.is_valid], df[df.is_valid]

def _trec():
    d = C.trec6(); return d[d.split != 'test'], d[d.split == 'test']

def _bbc():
    from ulmfit_ext.demo import load_bbc_news
    d = load_bbc_news(); return d[d.split != 'test'], d[d.split == 'test']   # the demo's fixed split

LOADERS = dict(trec6=_trec, imdb_sample=_imdb_sample, sms_spam=_sms, bbc=_bbc)

SMOKE = bool(os.environ.get('BENCH_SMOKE'))   # a check of the script: a few hundred rows, one grid setting, the smoke Stage 1

def write_csvs(name, work) -> tuple:
    tr, te = LOADERS[name]()
    if SMOKE: tr, te = C.stratified_split(tr, 300/len(tr), 0).query("split == 'valid'").drop(columns='split'), te.iloc[:60]
    work.mkdir(parents=True, exist_ok=True)
    tr[['text', 'label']].to_csv(work/'train.csv', index=False); te[['text', 'label']].to_csv(work/'test.csv', index=False)
    return tr, te

# ---- runs --------------------------------------------------------------------------------------------------------------
def ulmfit(*args, threads=1, log=None):
    "Run the installed `ulmfit` command; exit on failure with its last lines"
    exe = Path(sys.executable).parent/'ulmfit'
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    t = time.time()
    r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=env)
    if log: Path(log).write_text(r.stdout + r.stderr)
    if r.returncode: sys.exit(f"`ulmfit {' '.join(map(str, args[:1]))}` failed:\n{r.stderr[-3000:]}")
    return time.time() - t

def _same_lm(out, stage1, seed, lm_flags) -> bool:
    "Does `out/lm` hold a complete Stage-2 run of this command (same Stage 1, seed and flags, recorded in lm.log's command line)?"
    f, cmd = out/'lm'/'metrics.json', out/'lm.cmd'
    return f.exists() and cmd.exists() and cmd.read_text() == _lm_cmd(stage1, seed, lm_flags)

def _lm_cmd(stage1, seed, lm_flags) -> str: return ' '.join(map(str, ['finetune-lm', '--pretrained', stage1, '--seed', seed, *lm_flags]))

def chain(work, out, stage1, seed, lm_flags=(), clas_flags=(), threads=1, reuse_lm=False) -> dict:
    "finetune-lm -> train-classifier -> evaluate through the command (with `reuse_lm`, an identical earlier finetune-lm run is kept); returns the figures of the run"
    out.mkdir(parents=True, exist_ok=True)
    reused = reuse_lm and _same_lm(out, stage1, seed, lm_flags)
    if reused: t_lm = json.loads((out/'lm'/'metrics.json').read_text())['seconds']
    else:
        t_lm = ulmfit('finetune-lm', work/'train.csv', '--pretrained', stage1, '--out', out/'lm', '--seed', seed, '--overwrite', *lm_flags, threads=threads, log=out/'lm.log')
        (out/'lm.cmd').write_text(_lm_cmd(stage1, seed, lm_flags))
    t_cl = ulmfit('train-classifier', work/'train.csv', '--lm', out/'lm', '--out', out/'clas', '--seed', seed, '--overwrite', *clas_flags, threads=threads, log=out/'clas.log')
    ulmfit('evaluate', out/'clas', work/'test.csv', '--out', out/'eval', '--overwrite', threads=threads, log=out/'eval.log')
    m, e, lm = (json.loads((out/k/'metrics.json').read_text()) for k in ('clas', 'eval', 'lm'))
    f = m['fit']
    return dict(seed=seed, test_acc=e['accuracy'], valid_acc=m['accuracy'], lr=f['lr'], lr_source=f['lr_source'], drop_mult=m['drop_mult'],
                best_epoch=f['best_epoch'], epochs_run=f['epochs_run'], n_epoch=f['n_epoch'], lm_epochs=lm['fit']['epochs_run'],
                lm_perplexity=lm['perplexity'], lm_s=round(t_lm), clas_s=round(t_cl), lm_reused=bool(reused))

def grid(work, lm_folder, te, seed=0, which='full') -> list:
    "Stage 3 from `lm_folder` with every setting of `GRIDS[which]`; validation accuracy of each, test accuracy of each too (reported only for the one chosen)"
    from ulmfit_ext.pipeline import stage3
    from ulmfit_ext.inference import predict_texts
    tr, rows = pd.read_csv(work/'train.csv'), []
    for g in (GRIDS[which][:1] if SMOKE else GRIDS[which]):
        t = time.time()
        run = stage3(tr, lm_folder, seed=seed, progress=False, patience='auto' if g['epochs'] is None else None, **g)
        p = predict_texts(run.learn, te.text.tolist(), progress=False)
        r = run.report
        rows.append(dict(**g, valid_acc=r.best['accuracy'], valid_loss=r.best['valid_loss'], test_acc=float((p.label.astype(str).values == te.label.astype(str).values).mean()),
                         lr_used=r.lr, drop_used=run.learn.drop_mult, best_epoch=r.best_epoch, n_epoch=r.n_epoch, s=round(time.time() - t)))
        print(f"  grid {g}: valid {rows[-1]['valid_acc']:.4f} ({rows[-1]['s']} s)", flush=True)
    return rows

def run_set(name, seeds, stage1, threads, which='full', reuse_lm=False) -> dict:
    work = C.cache_dir_bench('defaults', name)
    tr, te = write_csvs(name, work)
    res = dict(data=name, n_train=len(tr), n_test=len(te), n_classes=int(tr.label.nunique()), stage1=str(stage1),
               command='python bench/bench_defaults.py ' + ' '.join(sys.argv[1:]), date=time.strftime('%Y-%m-%d'))
    print(f"{name}: {len(tr)} train / {len(te)} test texts", flush=True)
    res['tfidf'] = C.tfidf(pd.concat([C.stratified_split(tr, 0.1, 0), te.assign(split='test')]))
    res['defaults'] = [chain(work, work/f'defaults_s{s}', stage1, s, threads=threads, reuse_lm=reuse_lm) for s in range(seeds)]
    for r in res['defaults']: print(f"  defaults seed {r['seed']}: test {r['test_acc']:.4f} valid {r['valid_acc']:.4f}", flush=True)
    n_groups = 2 + json.loads((stage1/'config.json').read_text())['awd_lstm']['n_layers']   # embedding, each LSTM layer, head
    res['old'] = chain(work, work/'old_s0', stage1, 0, OLD_LM, OLD_CLAS + ['--epochs', str(n_groups)], threads=threads, reuse_lm=reuse_lm)
    print(f"  old defaults: test {res['old']['test_acc']:.4f}", flush=True)
    res['grid'] = grid(work, work/'defaults_s0'/'lm', te, which=which); res['grid_name'] = which
    return res

def rerun_defaults(res, name, seeds, stage1, threads) -> dict:
    "`res` (a set's results) with the defaults rows of `seeds` run again through the command; the other rows and the grid are kept"
    work = C.cache_dir_bench('defaults', name)
    write_csvs(name, work)
    rows = {r['seed']: r for r in res['defaults']}
    for s in seeds:
        rows[s] = chain(work, work/f'defaults_s{s}', stage1, s, threads=threads)
        print(f"  defaults seed {s} again: test {rows[s]['test_acc']:.4f} valid {rows[s]['valid_acc']:.4f}", flush=True)
    cmd = 'python bench/bench_defaults.py ' + ' '.join(sys.argv[1:])
    return dict(res, defaults=[rows[k] for k in sorted(rows)], command=f"{res.get('command', '?')}; then {cmd} ({time.strftime('%Y-%m-%d')})")

# ---- report ------------------------------------------------------------------------------------------------------------
def _best(rows): return max(rows, key=lambda r: (r['valid_acc'], -r['valid_loss']))

def _g(g): return ', '.join(f"{k} {'auto' if v is None else v}" for k, v in g.items() if k in ('lr', 'drop_mult', 'epochs'))

def report(results, args) -> str:
    pct = lambda x: f"{100*x:.2f}"
    lines = ['| data set | train / test | TF-IDF + LR | **CLI defaults** (mean ± sd, seeds) | old defaults | best found on validation (its setting) | defaults − best |',
             '|---|---|---|---|---|---|---|']
    for name in SETS:
        r = results.get(name)
        if r is None: continue
        d = [x['test_acc'] for x in r['defaults']]; b = _best(r['grid'])
        lines.append(f"| {name} | {r['n_train']} / {r['n_test']} | {pct(r['tfidf']['test_acc'])} | **{C.mean_sd(d)}** ({len(d)}) | {pct(r['old']['test_acc'])} | "
                     f"{pct(b['test_acc'])} ({_g(b)}) | {100*(np.mean(d) - b['test_acc']):+.2f} |")
    detail = ['', '| data set | seed | test acc | valid acc | head lr (source) | drop-mult | epoch kept / run / budget | LM epochs, perplexity | Stage 2 + 3 time |', '|---|---|---|---|---|---|---|---|---|']
    for name in SETS:
        r = results.get(name)
        if r is None: continue
        for x in r['defaults'] + [dict(r['old'], seed='old')]:
            detail.append(f"| {name} | {x['seed']} | {pct(x['test_acc'])} | {pct(x['valid_acc'])} | {x['lr']:.3g} ({x['lr_source']}) | {x['drop_mult']} | "
                          f"{x['best_epoch']} / {x['epochs_run']} / {x['n_epoch']} | {x['lm_epochs']}, {x['lm_perplexity']:.1f} | {x['lm_s']}{'*' if x.get('lm_reused') else ''} + {x['clas_s']} s |")
    grids = ['', 'Grid (Stage 3 from the seed-0 defaults LM, the settings of `--grid` as each set ran it; `auto` = the default choice; the row chosen by validation accuracy is in bold):', '']
    for name in SETS:
        r = results.get(name)
        if r is None: continue
        b = _best(r['grid'])
        grids.append(f"- {name}: " + '; '.join((f"**{_g(g)}: {pct(g['valid_acc'])}**" if g is b else f"{_g(g)}: {pct(g['valid_acc'])}") for g in r['grid']))
    runs = [f"- {n}: `{results[n]['command']}` ({results[n]['date']})" for n in SETS if n in results and 'command' in results[n]]
    if runs: grids += ['', 'Which command produced each set\'s rows (sets without a line here come from the command in the header); `*` after a Stage-2 time: '
                       'that seed\'s fine-tuned LM was kept from the earlier identical `finetune-lm` run (`--reuse-lm`), its time is that run\'s:', '', *runs]
    s1 = next(iter(results.values()))['stage1']
    head = C.header("The defaults: what `ulmfit` gives with no flags", args,
                    f"- Stage 1 (one for all rows): {s1}\n- test accuracy %, each data set as train.csv + test.csv; the command carves its own validation split (stratified 10 %)\n")
    return head + '\n'.join(lines + detail + grids) + '\n'

def main():
    p = C.bench_parser(__doc__, 'one seed for the defaults row', 3)
    p.set_defaults(data=','.join(SETS))
    for a in p._actions:
        if a.dest == 'data': a.choices = None
    p.add_argument('--stage1', default=None, help="the Stage-1 bundle (default: the demo's cached one)")
    p.add_argument('--report-only', action='store_true')
    p.add_argument('--reuse-lm', action='store_true', help="keep each seed's fine-tuned LM from an earlier identical finetune-lm run (same Stage 1, seed and flags): for a change to Stage 3 only")
    p.add_argument('--rerun-defaults', default=None, metavar='SEEDS', help="re-run only the defaults rows of these seeds ('0,2') of sets already in the results, after a change to a default; the old-defaults and grid rows are kept")
    p.add_argument('--grid', choices=tuple(GRIDS), default='full', help="the settings searched on validation: 'full' (18) or 'small' (4: head lr auto/0.04 x drop-mult auto/0.5)")
    args = C.parse_bench(p)
    names = [n.strip() for n in args.data.split(',') if n.strip()]
    bad = [n for n in names if n not in SETS]
    if bad: sys.exit(f"error: unknown data set {bad}: choose from {', '.join(SETS)}")
    raw = C.RESULTS/'defaults.raw.json'
    results = json.loads(raw.read_text()) if raw.exists() else {}
    if not args.report_only:
        stage1 = Path(args.stage1) if args.stage1 else C.stage1_bundle() if SMOKE else C.demo_stage1()
        for n in names:
            if args.rerun_defaults: results[n] = rerun_defaults(results[n], n, [int(x) for x in args.rerun_defaults.split(',')], stage1, args.threads)
            else: results[n] = run_set(n, args.seeds, stage1, args.threads, args.grid, args.reuse_lm)
            latest = json.loads(raw.read_text()) if raw.exists() else {}   # another process may have added other sets meanwhile
            C.save_json({**latest, n: results[n]}, raw)
        results = json.loads(raw.read_text())
    md = ('**SMOKE TEST** (BENCH_SMOKE: tiny data and Stage 1; checks the script, not the numbers)\n\n' if SMOKE else '') + report(results, args)
    C.write_md('defaults', md)
    print(md)

if __name__ == '__main__': main()
