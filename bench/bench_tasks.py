"""Task shapes (issue 16): a regression, a multi-label classifier, imbalanced classes, the forward+backward pair from the
command line, and document embeddings, each beside a linear baseline, with one Stage-1 LM for all (the best available:
the package's shipped models if there are any, else the demo's cached Stage-1 bundle and its backward twin).

    python bench/bench_tasks.py --part regression   # IMDb star ratings (1-4, 7-10) from the aclImdb file names; TF-IDF + ridge
    python bench/bench_tasks.py --part multilabel   # BBC News: single articles and pairs carrying both topics; TF-IDF + one-vs-rest LR
    python bench/bench_tasks.py --part sms          # SMS spam (13 % spam): macro-F1 without and with class weights; TF-IDF + LR both ways
    python bench/bench_tasks.py --part trec         # TREC-6 through the `ulmfit` command: forward, backward and their ensemble
    python bench/bench_tasks.py --part embed        # TREC-6 test questions: nearest neighbours of `embed_texts` vectors (mean vs concat pooling)
    python bench/bench_tasks.py --report-only       # rebuild bench/results/tasks.md from the raw results

Each part is run once (one seed unless stated) and writes bench/results/tasks_<part>.json; the report gathers those that exist.
Every ULMFiT row uses the package's defaults (`pipeline.stage2`/`stage3`, or the `ulmfit` command), with the task's options only."""
import json, os, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C

PARTS = ('regression', 'multilabel', 'sms', 'trec', 'embed')
SMOKE = bool(os.environ.get('BENCH_SMOKE'))   # a check of the script on a few hundred rows

def stage1(backwards=False):
    "(bundle, description): the package's shipped Stage-1 model if there is one, else the demo's cached bundle (and its backward twin)"
    from ulmfit_ext.bundle import shipped_models, shipped_bundle
    if shipped_models:
        name = next(iter(shipped_models))
        return shipped_bundle(name, backwards), f"the package's shipped Stage-1 model {name!r} ({'backward' if backwards else 'forward'})"
    b = C.demo_stage1(backwards)
    return b, (f"the demo's cached Stage-1 bundle ({b}; `bench/common.py demo_stage1()`" + (", its backward twin pretrained with the same settings" if backwards else '') +
               "; AWD-LSTM 64/128/2 on 500k tokens of Gutenberg books; the package ships no Stage-1 model yet)")

def _cut(texts, n_words):
    return [' '.join(str(t).split()[:n_words]) for t in texts]

def _timed(f, *a, **k):
    t = time.time(); r = f(*a, **k); return r, round(time.time() - t)

# ---- regression: IMDb star ratings -------------------------------------------------------------------------------------
def imdb_ratings(n_train=2000, n_test=1000, n_words=200, seed=0) -> pd.DataFrame:
    "A seeded sample of aclImdb reviews with their star rating (the number after '_' in the file name), cut to their first `n_words` words"
    df = C._imdb_all()
    df = df[df.part.isin(['train', 'test'])].copy()
    df['rating'] = df.file.str.extract(r'_(\d+)\.txt$')[0].astype(float)
    tr = df[df.part == 'train'].sample(n=n_train, random_state=seed)
    te = df[df.part == 'test'].sample(n=n_test, random_state=seed)
    out = pd.concat([tr.assign(split='train'), te.assign(split='test')], ignore_index=True)
    out.loc[out[out.split == 'train'].sample(frac=0.1, random_state=seed).index, 'split'] = 'valid'
    return out.assign(text=_cut(out.text, n_words))[['text', 'rating', 'split']]

def ridge(df, target, alphas=(0.3, 1, 3, 10, 30)) -> dict:
    "TF-IDF (word 1-2-grams, sublinear tf) + ridge regression; alpha chosen on the validation split"
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge
    from ulmfit_ext.tasks import regression_report
    tr, va, te = (df[df.split == k] for k in ('train', 'valid', 'test'))
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(tr.text)
    X = {k: vec.transform(d.text) for k, d in (('tr', tr), ('va', va), ('te', te))}
    scores = {a: regression_report(va[target], Ridge(alpha=a).fit(X['tr'], tr[target]).predict(X['va']))['rmse'] for a in alphas}
    a = min(scores, key=scores.get)
    return dict(alpha=a, valid_rmse=scores[a], test=regression_report(te[target], Ridge(alpha=a).fit(X['tr'], tr[target]).predict(X['te'])))

def part_regression(a):
    from ulmfit_ext.pipeline import stage2, stage3
    from ulmfit_ext.ensemble import evaluate_texts
    from ulmfit_ext.tasks import regression_report
    df = imdb_ratings(*((300, 100) if SMOKE else (2000, 1000)))
    s1, desc = stage1()
    lab = df[df.split != 'test'].assign(is_valid=lambda d: d.split == 'valid')
    lm, t_lm = _timed(stage2, lab[['text']], s1, progress=False)
    run, t_cl = _timed(stage3, lab, lm, label_col='rating', regression=True, valid_col='is_valid', progress=False)
    te = df[df.split == 'test']
    ev = evaluate_texts(run.learn, te)
    res = dict(stage1=desc, n=dict(train=int((df.split == 'train').sum()), valid=int((df.split == 'valid').sum()), test=len(te)),
               ulmfit=dict(test={k: ev[k] for k in ('rmse', 'mae', 'spearman', 'pearson', 'r2', 'n')}, valid=run.metrics()['valid'], y_range=run.learn.task['y_range'],
                           monitor=run.report.monitor, best_epoch=run.report.best_epoch, epochs_run=run.report.epochs_run, n_epoch=run.report.n_epoch,
                           lr=run.report.lr, lm_epochs=lm.report.epochs_run, seconds=t_lm + t_cl),
               ridge=ridge(df, 'rating'), mean=regression_report(te.rating, np.full(len(te), df[df.split == 'train'].rating.mean())))
    return res

# ---- multi-label: BBC News pairs --------------------------------------------------------------------------------------
def bbc_pairs(n_words=100, seed=0) -> pd.DataFrame:
    """A constructed multi-label set from real texts: in each split of the demo's BBC News split, a third of the articles
    stand alone (one topic), the others are paired with an article of another topic and concatenated (both topics);
    every article is cut to its first `n_words` words and used once"""
    from ulmfit_ext.demo import load_bbc_news
    bbc = load_bbc_news()
    rng, rows = np.random.default_rng(seed), []
    for split, d in bbc.groupby('split'):
        d = d.iloc[rng.permutation(len(d))]
        texts, labels = _cut(d.text, n_words), d.label.tolist()
        n1 = len(d) // 3
        rows += [(texts[i], labels[i], split) for i in range(n1)]
        rest = list(range(n1, len(d)))
        while len(rest) > 1:
            i = rest.pop(0)
            j = next((k for k in rest if labels[k] != labels[i]), None)
            if j is None: break
            rest.remove(j)
            rows.append((texts[i] + '\n\n' + texts[j], ';'.join(sorted({labels[i], labels[j]})), split))
    return pd.DataFrame(rows, columns=['text', 'topics', 'split'])

def ovr(df, Cs=(1, 10, 100)) -> dict:
    "TF-IDF + one-vs-rest logistic regression; C and the threshold (one for all labels, best validation micro-F1, the package's rule) chosen on validation"
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import MultiLabelBinarizer
    from ulmfit_ext.tasks import choose_threshold, multilabel_report
    tr, va, te = (df[df.split == k] for k in ('train', 'valid', 'test'))
    mlb = MultiLabelBinarizer().fit(df.topics.str.split(';'))
    Y = {k: mlb.transform(d.topics.str.split(';')) for k, d in (('tr', tr), ('va', va), ('te', te))}
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(tr.text)
    X = {k: vec.transform(d.text) for k, d in (('tr', tr), ('va', va), ('te', te))}
    fits = {c: OneVsRestClassifier(LogisticRegression(C=c, max_iter=3000)).fit(X['tr'], Y['tr']) for c in Cs}
    sel = {c: choose_threshold(m.predict_proba(X['va']), Y['va']) for c, m in fits.items()}
    c = max(sel, key=lambda c: sel[c][1]); t = sel[c][0]
    return dict(C=c, threshold=t, valid_f1_micro=sel[c][1], test=multilabel_report(Y['te'], fits[c].predict_proba(X['te']), list(mlb.classes_), t))

def _labelled_lm(df, smoke_rows):
    "The labelled rows (train and valid, with `is_valid`) of a split `df`, and Stage 2 on their text from the shipped Stage 1: (df, lab, lm, seconds, Stage-1 description); with BENCH_SMOKE, the first `smoke_rows` (train, other splits) rows of each split"
    from ulmfit_ext.pipeline import stage2
    if SMOKE: df = pd.concat([d.head(smoke_rows[0] if s == 'train' else smoke_rows[1]) for s, d in df.groupby('split')])
    s1, desc = stage1()
    lab = df[df.split != 'test'].assign(is_valid=lambda d: d.split == 'valid')
    lm, t_lm = _timed(stage2, lab[['text']], s1, progress=False)
    return df, lab, lm, t_lm, desc

def part_multilabel(a):
    from ulmfit_ext.pipeline import stage3
    from ulmfit_ext.ensemble import evaluate_texts
    df, lab, lm, t_lm, desc = _labelled_lm(bbc_pairs(), (150, 40))
    run, t_cl = _timed(stage3, lab, lm, label_col='topics', label_delim=';', valid_col='is_valid', progress=False)
    te = df[df.split == 'test']
    ev = evaluate_texts(run.learn, te, label_col='topics')
    keys = ('f1_micro', 'f1_macro', 'subset_accuracy', 'accuracy_multi', 'labels_per_text', 'n', 'threshold')
    n2 = lambda d: int(d.topics.str.contains(';').sum())
    return dict(stage1=desc, n={s: dict(texts=int((df.split == s).sum()), pairs=n2(df[df.split == s])) for s in ('train', 'valid', 'test')},
                ulmfit=dict(test={k: ev[k] for k in keys}, per_label=ev['per_label'], threshold=run.learn.task['threshold'], monitor=run.report.monitor,
                            valid_f1_micro=run.report.best.get('f1_micro'), best_epoch=run.report.best_epoch, epochs_run=run.report.epochs_run,
                            n_epoch=run.report.n_epoch, lm_epochs=lm.report.epochs_run, seconds=t_lm + t_cl),
                tfidf_ovr=ovr(df))

# ---- imbalanced: SMS spam -----------------------------------------------------------------------------------------------
def sms():
    "SMS spam with bench_defaults' seeded stratified 80/20 split, 10 % of train held out (stratified) for validation"
    p = C.shared('sms_spam')/'SMSSpamCollection'
    rows = [l.split('\t', 1) for l in p.read_text(encoding='utf-8').splitlines() if l.strip()]
    df = pd.DataFrame([(t, l) for l, t in rows], columns=['text', 'label'])
    te = df.groupby('label', group_keys=False).sample(frac=0.2, random_state=0)
    tr = C.stratified_split(df.drop(te.index), 0.1, 0)
    return pd.concat([tr, te.assign(split='test')], ignore_index=True)

def lr_f1(df, weighted, Cs=(1, 10, 100)) -> dict:
    "TF-IDF + logistic regression (`class_weight='balanced'` if `weighted`); C chosen on validation macro-F1"
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, accuracy_score
    tr, va, te = (df[df.split == k] for k in ('train', 'valid', 'test'))
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(tr.text)
    fit = lambda c: LogisticRegression(C=c, max_iter=3000, class_weight='balanced' if weighted else None).fit(vec.transform(tr.text), tr.label)
    sc = {c: f1_score(va.label, fit(c).predict(vec.transform(va.text)), average='macro') for c in Cs}
    c = max(sc, key=sc.get); p = fit(c).predict(vec.transform(te.text))
    return dict(C=c, valid_macro_f1=sc[c], test_macro_f1=float(f1_score(te.label, p, average='macro')), test_accuracy=float(accuracy_score(te.label, p)),
                test_spam_f1=float(f1_score(te.label, p, pos_label='spam', average='binary')))

def part_sms(a):
    from ulmfit_ext.pipeline import stage3
    from ulmfit_ext.ensemble import evaluate_texts
    df, lab, lm, t_lm, desc = _labelled_lm(sms(), (300, 80))
    te, rows = df[df.split == 'test'], []
    for seed in range(1 if SMOKE else 2):
        for cw in (None, 'balanced'):
            run, t = _timed(stage3, lab, lm, class_weights=cw, valid_col='is_valid', seed=seed, progress=False)
            ev = evaluate_texts(run.learn, te)
            rows.append(dict(seed=seed, class_weights=cw, monitor=run.report.monitor, test_macro_f1=ev['macro_f1'], test_accuracy=ev['accuracy'],
                             test_spam_f1=ev['per_class']['spam']['f1'], spam_recall=ev['per_class']['spam']['recall'], spam_precision=ev['per_class']['spam']['precision'],
                             valid_macro_f1=run.report.best.get('macro_f1'), best_epoch=run.report.best_epoch, epochs_run=run.report.epochs_run, seconds=t))
            print(f"  sms seed {seed} class_weights {cw}: test macro-F1 {ev['macro_f1']:.4f}", flush=True)
    return dict(stage1=desc, n={s: int((df.split == s).sum()) for s in ('train', 'valid', 'test')}, spam_share=float((df.label == 'spam').mean()),
                lm_seconds=t_lm, ulmfit=rows, tfidf=lr_f1(df, False), tfidf_balanced=lr_f1(df, True))

# ---- forward + backward from the command line: TREC-6 -------------------------------------------------------------------
def ulmfit(*args, log=None) -> float:
    "Run the `ulmfit` command (this checkout first on the path); exit with its last lines on failure; the seconds it took"
    exe = Path(sys.executable).parent/'ulmfit'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(C.ROOT))
    t = time.time()
    r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=env)
    if log: Path(log).write_text(r.stdout + r.stderr)
    if r.returncode: sys.exit(f"`ulmfit {args[0]}` failed:\n{r.stderr[-3000:]}")
    return round(time.time() - t)

def part_trec(a):
    work = C.cache_dir_bench('tasks', 'trec')
    d = C.trec6()
    tr, te = d[d.split != 'test'][['text', 'label']], d[d.split == 'test'][['text', 'label']]
    if SMOKE: tr, te = C.stratified_split(tr, 300/len(tr), 0).query("split == 'valid'")[['text', 'label']], te.head(60)
    tr.to_csv(work/'train.csv', index=False); te.to_csv(work/'test.csv', index=False)
    (f1, fdesc), (b1, bdesc) = stage1(), stage1(True)
    t = dict(lm_fwd=ulmfit('finetune-lm', work/'train.csv', '--pretrained', f1, '--out', work/'lm_fwd', '--overwrite', log=work/'lm_fwd.log'),
             lm_bwd=ulmfit('finetune-lm', work/'train.csv', '--pretrained', b1, '--backwards', '--out', work/'lm_bwd', '--overwrite', log=work/'lm_bwd.log'))
    t['pair'] = ulmfit('train-classifier', work/'train.csv', '--lm', work/'lm_fwd', '--lm-bwd', work/'lm_bwd', '--out', work/'pair', '--overwrite', log=work/'pair.log')
    t['evaluate'] = ulmfit('evaluate', work/'pair', work/'test.csv', '--out', work/'eval', '--overwrite', log=work/'eval.log')
    m, e = (json.loads((work/k/'metrics.json').read_text()) for k in ('pair', 'eval'))
    rows = [dict(model=d, test_accuracy=(e['members'][d] if d != 'ensemble' else e)['accuracy'], test_macro_f1=(e['members'][d] if d != 'ensemble' else e)['macro_f1'],
                 valid_accuracy=next(r for r in m['table'] if r['model'] == d)['accuracy']) for d in ('fwd', 'bwd', 'ensemble')]
    fits = {d: dict(monitor=m['members'][d]['fit']['monitor'], best_epoch=m['members'][d]['fit']['best_epoch'], epochs_run=m['members'][d]['fit']['epochs_run'],
                    lr=m['members'][d]['fit']['lr']) for d in ('fwd', 'bwd')}
    cmds = [f"ulmfit finetune-lm train.csv --pretrained STAGE1_FWD --out lm_fwd", f"ulmfit finetune-lm train.csv --pretrained STAGE1_BWD --backwards --out lm_bwd",
            "ulmfit train-classifier train.csv --lm lm_fwd --lm-bwd lm_bwd --out pair", "ulmfit evaluate pair test.csv --out eval"]
    return dict(stage1=fdesc, stage1_bwd=bdesc, n=dict(train=len(tr), test=len(te)), rows=rows, fits=fits, seconds=t, commands=cmds,
                tfidf=C.tfidf(pd.concat([C.stratified_split(tr, 0.1, 0), te.assign(split='test')])))

# ---- embeddings: nearest neighbours -------------------------------------------------------------------------------------
def knn_agreement(X, labels) -> float:
    "Leave-one-out share of texts whose nearest neighbour (cosine) has the same label"
    X = np.asarray(X, dtype=np.float64); X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    S = X @ X.T; np.fill_diagonal(S, -np.inf)
    lab = np.asarray(labels)
    return float((lab[S.argmax(1)] == lab).mean())

def part_embed(a):
    "Nearest-neighbour label agreement of TREC-6 test questions embedded by the TREC part's models (run --part trec first)"
    from sklearn.feature_extraction.text import TfidfVectorizer
    from ulmfit_ext.embed import embed_texts
    work = C.cache_dir_bench('tasks', 'trec')
    if not (work/'pair'/'metrics.json').exists(): sys.exit("error: run `python bench/bench_tasks.py --part trec` first: this part embeds with its models.")
    te = pd.read_csv(work/'test.csv')
    p = te.label.value_counts(normalize=True).values
    rows = [dict(model='chance (same label drawn at random)', pool='', dims='', agreement=float((p**2).sum()), seconds=0)]
    for name, m in (('fine-tuned LM (Stage 2, forward)', work/'lm_fwd'/'encoder'), ('classifier (Stage 3, forward)', work/'pair'/'fwd'/'bundle'),
                    ('forward+backward pair', work/'pair')):
        for pool in ('mean', 'concat'):
            (X, t) = _timed(embed_texts, m, te.text.tolist(), pool=pool, progress=False)
            rows.append(dict(model=name, pool=pool, dims=X.shape[1], agreement=knn_agreement(X, te.label), seconds=t))
    X = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(pd.read_csv(work/'train.csv').text).transform(te.text).toarray()
    rows.append(dict(model='TF-IDF (word 1-2-grams, fitted on train)', pool='', dims=X.shape[1], agreement=knn_agreement(X, te.label), seconds=0))
    return dict(n=len(te), rows=rows)

# ---- report ------------------------------------------------------------------------------------------------------------
def _f(x, d=4): return '' if x is None or x == '' else f"{x:.{d}f}" if isinstance(x, float) else str(x)

def report(a) -> str:
    R = {p: json.loads((C.RESULTS/f'tasks_{p}.json').read_text()) for p in PARTS if (C.RESULTS/f'tasks_{p}.json').exists()}
    out = [C.header('Task shapes: regression, multi-label, imbalanced classes, forward+backward, embeddings', a,
                    "- one run each (SMS spam: two seeds of Stage 3 on one Stage 2); every ULMFiT row is the package's defaults plus the task's options; "
                    "the linear baselines choose their regularisation on the same validation split\n"
                    f"- Stage 1: {next((r['stage1'] for r in R.values() if 'stage1' in r), 'see each part')}\n"
                    "- raw results: bench/results/tasks_<part>.json (each with its own header line below)")]
    if 'regression' in R:
        r = R['regression']; u, g = r['ulmfit'], r['ridge']
        out += ['## Regression: IMDb star ratings', '',
                f"{r['n']['train']} training / {r['n']['valid']} validation reviews sampled (seed 0) from aclImdb's train part, {r['n']['test']} test reviews from its test part, "
                "each **cut to its first 200 words** to fit the CPU budget; the target is the star rating in the file name (1-4 and 7-10). "
                f"`stage3(label_col='rating', regression=True)`: y_range from the data {[round(v, 2) for v in u['y_range']]}, MSE, epoch kept by {u['monitor']} "
                f"({u['best_epoch']} of {u['epochs_run']} run, budget {u['n_epoch']}; LM {u['lm_epochs']} epochs; {u['seconds']} s).", '',
                '| model | test RMSE | test MAE | Spearman | Pearson | R² |', '|---|---:|---:|---:|---:|---:|',
                f"| ULMFiT regression | {_f(u['test']['rmse'])} | {_f(u['test']['mae'])} | {_f(u['test']['spearman'])} | {_f(u['test']['pearson'])} | {_f(u['test']['r2'])} |",
                f"| TF-IDF + ridge (alpha {g['alpha']} on valid) | {_f(g['test']['rmse'])} | {_f(g['test']['mae'])} | {_f(g['test']['spearman'])} | {_f(g['test']['pearson'])} | {_f(g['test']['r2'])} |",
                f"| the training mean | {_f(r['mean']['rmse'])} | {_f(r['mean']['mae'])} | | | {_f(r['mean']['r2'])} |", '']
    if 'multilabel' in R:
        r = R['multilabel']; u, g = r['ulmfit'], r['tfidf_ovr']
        n = r['n']
        out += ['## Multi-label: BBC News, constructed', '',
                "No multi-label set is in ../shared, so one is **constructed from real texts**: in each split of the demo's BBC News split, a third of the articles stand alone "
                "(one topic) and the others are paired with an article of another topic and concatenated (both topics); every article is cut to its first 100 words and used once "
                f"({n['train']['texts']} training texts of which {n['train']['pairs']} pairs, {n['valid']['texts']} validation ({n['valid']['pairs']}), {n['test']['texts']} test ({n['test']['pairs']})). "
                f"`stage3(label_col='topics', label_delim=';')`: epoch kept by {u['monitor']} ({u['best_epoch']} of {u['epochs_run']}), threshold {u['threshold']:.2f} chosen on validation "
                f"(best micro-F1, one for all labels); {u['seconds']} s.", '',
                '| model | threshold | test micro-F1 | test macro-F1 | exact-set accuracy | label-wise accuracy |', '|---|---:|---:|---:|---:|---:|',
                f"| ULMFiT multi-label | {u['threshold']:.2f} | {_f(u['test']['f1_micro'])} | {_f(u['test']['f1_macro'])} | {_f(u['test']['subset_accuracy'])} | {_f(u['test']['accuracy_multi'])} |",
                f"| TF-IDF + one-vs-rest LR (C {g['C']}) | {g['threshold']:.2f} | {_f(g['test']['f1_micro'])} | {_f(g['test']['f1_macro'])} | {_f(g['test']['subset_accuracy'])} | {_f(g['test']['accuracy_multi'])} |", '']
    if 'sms' in R:
        r = R['sms']
        out += ['## Imbalanced classes: SMS spam', '',
                f"{r['n']['train']} training / {r['n']['valid']} validation / {r['n']['test']} test messages ({100*r['spam_share']:.1f} % spam; test: a seeded stratified 20 %). "
                "One Stage 2; Stage 3 with the defaults (the classes are imbalanced, so the epoch kept is the one with the best validation macro-F1) and with `class_weights='balanced'`, two seeds each.", '',
                '| model | seed | test macro-F1 | test accuracy | spam F1 | spam recall | spam precision | epoch kept / run |', '|---|---:|---:|---:|---:|---:|---:|---:|']
        for x in r['ulmfit']:
            out.append(f"| ULMFiT{', class weights balanced' if x['class_weights'] else ''} | {x['seed']} | {_f(x['test_macro_f1'])} | {_f(x['test_accuracy'])} | {_f(x['test_spam_f1'])} | "
                       f"{_f(x['spam_recall'])} | {_f(x['spam_precision'])} | {x['best_epoch']} / {x['epochs_run']} |")
        for k, w in (('tfidf', ''), ('tfidf_balanced', ", class_weight='balanced'")):
            t = r[k]; out.append(f"| TF-IDF + LR{w} (C {t['C']}) | | {_f(t['test_macro_f1'])} | {_f(t['test_accuracy'])} | {_f(t['test_spam_f1'])} | | | |")
        for cw in (None, 'balanced'):
            xs = [x['test_macro_f1'] for x in r['ulmfit'] if x['class_weights'] == cw]
            out.append(f"\nULMFiT{' with balanced class weights' if cw else ' without class weights'}: mean test macro-F1 {np.mean(xs):.4f} over {len(xs)} seed(s).")
        out.append('')
    if 'trec' in R:
        r = R['trec']
        out += ['## Forward, backward and their ensemble from the command line: TREC-6', '',
                f"{r['n']['train']} training questions (the command carves its stratified validation split), {r['n']['test']} test. Backward Stage 1: {r['stage1_bwd']}. Commands, every training choice automatic:", '',
                *[f"    {c}" for c in r['commands']], '',
                '| model | test accuracy | test macro-F1 | validation accuracy |', '|---|---:|---:|---:|',
                *[f"| {x['model']} | {_f(x['test_accuracy'])} | {_f(x['test_macro_f1'])} | {_f(x['valid_accuracy'])} |" for x in r['rows']],
                f"| TF-IDF + LR (C {r['tfidf']['C']}) | {_f(r['tfidf']['test_acc'])} | | {_f(r['tfidf']['valid_acc'])} |", '',
                "Epoch kept by " + '; '.join(f"{d}: {f['monitor']} (epoch {f['best_epoch']} of {f['epochs_run']}, head lr {f['lr']:.3g})" for d, f in r['fits'].items()) +
                f". Seconds: {r['seconds']}.", '']
    if 'embed' in R:
        r = R['embed']
        out += ['## Document embeddings: nearest neighbours', '',
                f"`embed_texts` on the {r['n']} TREC-6 test questions with the models of the TREC-6 part; the share of questions whose nearest other question (cosine) has the same label:", '',
                '| model | pooling | dimensions | 1-NN label agreement | seconds |', '|---|---|---:|---:|---:|',
                *[f"| {x['model']} | {x['pool']} | {x['dims']} | {_f(x['agreement'])} | {x['seconds']} |" for x in r['rows']], '']
    out += ['Each part\'s run:', '', *[f"- {p}: " + '; '.join(h.lstrip('- ') for h in R[p].get('header', [])) + f" ({R[p].get('wall_seconds', '?')} s)" for p in PARTS if p in R], '']
    missing = [p for p in PARTS if p not in R]
    if missing: out += [f"Not run yet: {', '.join(missing)} (`python bench/bench_tasks.py --part {','.join(missing)}`).", '']
    return '\n'.join(out)

if __name__ == '__main__':
    p = C.bench_parser(__doc__, 'a check on a few hundred rows', 1)
    p.add_argument('--part', default=None, help=f"comma-separated parts to run: {', '.join(PARTS)}")
    p.add_argument('--report-only', action='store_true')
    a = C.parse_bench(p)
    for part in ([] if a.report_only else (a.part or ','.join(PARTS)).split(',')):
        print(f"== {part}", flush=True)
        (res, t) = _timed(globals()[f'part_{part}'], a)
        res['header'] = C.header(f'tasks: {part}', a).splitlines()[2:5]
        res['wall_seconds'] = t
        C.save_json(res, C.RESULTS/f'tasks_{part}.json')
        print(f"== {part}: {t} s", flush=True)
    C.write_md('tasks', report(a))
    print(f"wrote {C.RESULTS/'tasks.md'}")
