"""Benchmark: throughput and memory of this package's ULMFiT path vs fastai's stock text path, side by side in one run, on the
same AWD-LSTM sizes (emb 100, n_hid 300, 2 layers), the same texts, batch size, BPTT and number of epochs (1).

    python bench/bench_throughput.py --quick         # LM/classifier on 1,000 docs, inference on 2,000 texts
    python bench/bench_throughput.py                 # LM 2,500 docs, classifier 4,000 docs, inference 10,000 texts
    python bench/bench_throughput.py --threads 2 --out /tmp/res

Tasks, each run by both paths:
  lm     LM fine-tuning, tokens/s.  ours: `lm_dls` + `lm_learner` + `finetune_lm`;
         fastai: `DataBlock(TextBlock.from_df(is_lm=True))` + `language_model_learner(pretrained=False)` + `fit_one_cycle`.
  clas   classifier training, docs/s.  ours: `clas_dls` + `clas_learner` + `train_classifier(variant='scratch')`;
         fastai: `DataBlock(TextBlock.from_df(vocab=...), CategoryBlock)` + `text_classifier_learner(pretrained=False)` + `fit_one_cycle`.
         Each path uses the vocabulary of its own LM run and saves its trained classifier for `infer`.
  infer  classifier inference, docs/s.  ours: bundle folder -> `as_predictor` + `predict_texts`;
         fastai: `learn.export()` file -> `load_learner` + `dls.test_dl(texts)` + `get_preds`.
Every (path, task) runs in its own fresh subprocess (a child mode of this script printing one JSON line), so peak memory
(`ru_maxrss`) of one does not leak into another; the peak is also reported minus the RSS the child had after its imports and
data loading. The setup (DataLoader build = tokenization + numericalization, or model load for `infer`) is timed apart from
the training epoch (measured by a callback from the first to the last training batch; validation excluded) or the prediction.
Tokenization runs in-process on both paths (`--tok-workers 0`), ours without its on-disk token cache (`cache=False`); ours'
cold/warm cached build times are measured after training and reported on the side.

Data: the 1,000 reviews of ../shared/datasets/imdb_sample repeated; every copy after the first cut to a random 30-100% of its
words (seeded); inference texts are cut to 5-100% (`bench_inference.load_texts`). Exits with one line if the data is absent.
Writes `<out>/throughput.md` and `<out>/throughput.png`. Measured running time on the shared 2-core dev machine (1 thread,
load average 4-5 from other jobs): `--quick` 4.5 minutes, full mode 12.2-12.7 minutes over two runs (the results file's header gives its run's)."""
import argparse, json, os, platform, resource, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import numpy as np, pandas as pd
from common import threads, RESULTS, ROOT

SIZES = dict(emb_sz=100, n_hid=300, n_layers=2)
SEED, BS, BPTT, LR_LM, LR_CLAS = 0, 64, 70, 4e-3, 1e-3
FULL = dict(n_lm=2500, n_clas=4000, n_infer=10000)
QUICK = dict(n_lm=1000, n_clas=1000, n_infer=2000)
TASKS, PATHS = ('lm', 'clas', 'infer'), ('ours', 'fastai')
MARK = 'BENCH_RESULT '

# ---- data ---------------------------------------------------------------------------------------------------------------
def sample_path() -> Path:
    "The imdb_sample folder, or a one-line exit"
    from ulmfit_ext.core import dataset_path
    p = dataset_path('imdb_sample')
    if p is None or not (p/'texts.csv').exists():
        sys.exit("error: ../shared/datasets/imdb_sample/texts.csv is not on this machine; this benchmark reads its reviews from there.")
    return p

def reviews(n:int, seed:int=SEED) -> pd.DataFrame:
    "`n` labelled reviews (text, label, is_valid): imdb_sample repeated, copies after the first cut to 30-100% of their words"
    base = pd.read_csv(sample_path()/'texts.csv')
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        r = base.iloc[i % len(base)]
        w = r.text.split()
        keep = len(w) if i < len(base) else max(1, int(len(w) * rng.uniform(0.3, 1.0)))
        rows.append((' '.join(w[:keep]), r.label, bool(r.is_valid)))
    return pd.DataFrame(rows, columns=['text', 'label', 'is_valid'])

def rss_mb() -> float:
    "Current resident memory of this process (MB)"
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20

def peak_mb() -> float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

# ---- one (path, task) in a child process -----------------------------------------------------------------------------------
def meter():
    "A fastai callback timing the training phase and counting its tokens and items"
    from fastai.callback.core import Callback
    from fastai.torch_core import find_bs
    class Meter(Callback):
        def before_fit(self): self.train_s, self.train_cpu, self.valid_s, self.tokens, self.items, self.batches = 0., 0., 0., 0, 0, 0
        def before_train(self): self.t, self.c = time.perf_counter(), time.process_time()
        def after_batch(self):
            if self.training: self.tokens += self.xb[0].numel(); self.items += find_bs(self.yb); self.batches += 1
        def after_train(self): self.train_s += time.perf_counter() - self.t; self.train_cpu += time.process_time() - self.c
        def before_validate(self): self.t = time.perf_counter()
        def after_validate(self): self.valid_s += time.perf_counter() - self.t
    return Meter()

def lm_child(path, df, a, work):
    "Build LM DataLoaders and fine-tune one epoch; returns the numbers"
    from fastai.text.all import DataBlock, TextBlock, ColReader, RandomSplitter, language_model_learner, AWD_LSTM, awd_lstm_lm_config
    from ulmfit_ext.data import lm_dls, dls_info
    from ulmfit_ext.learner import lm_learner, finetune_lm
    t = time.perf_counter()
    if path == 'ours':
        dls = lm_dls(df, text_col='text', valid_pct=0.1, bs=BS, bptt=BPTT, seed=SEED, cache=False, n_workers=a.tok_workers, progress=False, num_workers=0)
    else:
        db = DataBlock(blocks=TextBlock.from_df('text', is_lm=True, seq_len=BPTT, n_workers=a.tok_workers), get_x=ColReader('text'),
                       splitter=RandomSplitter(0.1, seed=SEED))
        dls = db.dataloaders(df, bs=BS, seq_len=BPTT, num_workers=0)
    setup = time.perf_counter() - t
    vocab = dls_info(dls).vocab
    (work/f'vocab_{path}.json').write_text(json.dumps(vocab))
    m = meter()
    if path == 'ours':
        learn = lm_learner(dls, config=SIZES)
        with learn.no_bar(), learn.no_logging(): finetune_lm(learn, 1, lr=LR_LM, cbs=[m])
    else:
        learn = language_model_learner(dls, AWD_LSTM, config={**awd_lstm_lm_config, **SIZES}, pretrained=False)
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, LR_LM, cbs=[m])
    res = dict(setup_s=setup, run_s=m.train_s, run_cpu_s=m.train_cpu, valid_s=m.valid_s, units=m.tokens, batches=m.batches, vocab=len(vocab), peak_mb=peak_mb())
    if path == 'ours': res.update(cached_build(df, a, work))
    return res

def cached_build(df, a, work) -> dict:
    "Ours with the token cache on: a first (cold, writing the cache) and a second (warm) DataLoader build"
    from ulmfit_ext.data import lm_dls
    os.environ['ULMFIT_CACHE'] = str(work/'cache')
    out = {}
    for k in ('cache_cold_s', 'cache_warm_s'):
        t = time.perf_counter()
        lm_dls(df, text_col='text', valid_pct=0.1, bs=BS, bptt=BPTT, seed=SEED, cache=True, n_workers=a.tok_workers, progress=False, num_workers=0)
        out[k] = time.perf_counter() - t
    return out

def clas_child(path, df, a, work):
    "Build classifier DataLoaders with this path's LM vocabulary, train one epoch, save the classifier for `infer`"
    from fastai.text.all import (DataBlock, TextBlock, CategoryBlock, ColReader, ColSplitter, text_classifier_learner, AWD_LSTM,
                                 awd_lstm_clas_config)
    from ulmfit_ext.data import clas_dls
    from ulmfit_ext.learner import clas_learner, train_classifier
    from ulmfit_ext.bundle import save_classifier_bundle
    vocab = json.loads((work/f'vocab_{path}.json').read_text())
    t = time.perf_counter()
    if path == 'ours':
        dls = clas_dls(df, 'text', 'label', vocab=vocab, valid_col='is_valid', bs=BS, bptt=BPTT, cache=False, n_workers=a.tok_workers,
                       progress=False, num_workers=0)
    else:
        db = DataBlock(blocks=(TextBlock.from_df('text', vocab=vocab, seq_len=BPTT, n_workers=a.tok_workers), CategoryBlock),
                       get_x=ColReader('text'), get_y=ColReader('label'), splitter=ColSplitter('is_valid'))
        dls = db.dataloaders(df, bs=BS, num_workers=0)
    setup = time.perf_counter() - t
    m = meter()
    if path == 'ours':
        learn = clas_learner(dls, config=SIZES)
        with learn.no_bar(), learn.no_logging(): train_classifier(learn, 1, variant='scratch', lr=LR_CLAS, cbs=[m])
    else:
        learn = text_classifier_learner(dls, AWD_LSTM, seq_len=BPTT, config={**awd_lstm_clas_config, **SIZES}, pretrained=False,
                                        drop_mult=1., lin_ftrs=[50], max_len=BPTT*20)
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, LR_CLAS, cbs=[m])
    res = dict(setup_s=setup, run_s=m.train_s, run_cpu_s=m.train_cpu, valid_s=m.valid_s, units=m.items, batches=m.batches, peak_mb=peak_mb())
    if path == 'ours': save_classifier_bundle(learn, work/'clas_ours')
    else: learn.export(work/'clas_fastai.pkl')
    return res

def infer_child(path, texts, a, work):
    "Load the classifier saved by `clas` and predict `texts`"
    import warnings
    t = time.perf_counter()
    if path == 'ours':
        from ulmfit_ext.inference import as_predictor, predict_texts
        pred = as_predictor(work/'clas_ours')
        setup = time.perf_counter() - t; t, c = time.perf_counter(), time.process_time()
        out = predict_texts(pred, texts, bs=BS, progress=False)
    else:
        from fastai.learner import load_learner
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='load_learner')
            learn = load_learner(work/'clas_fastai.pkl')
        setup = time.perf_counter() - t; t, c = time.perf_counter(), time.process_time()
        dl = learn.dls.test_dl(texts, bs=BS, num_workers=0)
        with learn.no_bar(): out = learn.get_preds(dl=dl)[0]
    run, cpu = time.perf_counter() - t, time.process_time() - c
    assert len(out) == len(texts)
    return dict(setup_s=setup, run_s=run, run_cpu_s=cpu, units=len(texts), peak_mb=peak_mb())

def child(a):
    "Run one (path, task) in this fresh process and print its numbers as one marked JSON line"
    threads(a.threads)
    import torch, fastai.text.all, ulmfit_ext.data, ulmfit_ext.learner, ulmfit_ext.inference  # imports count in the start RSS
    torch.manual_seed(SEED); np.random.seed(SEED)
    work, n = Path(a.work), (QUICK if a.quick else FULL)
    if a.child == 'infer':
        from bench_inference import load_texts
        data = load_texts(n['n_infer'], seed=SEED)
    else: data = reviews(n['n_lm' if a.child == 'lm' else 'n_clas'])
    start = rss_mb()
    res = dict(lm=lm_child, clas=clas_child, infer=infer_child)[a.child](a.path, data, a, work)
    print(MARK + json.dumps(dict(task=a.child, path=a.path, start_mb=start, **res)), flush=True)

def run_child(task, path, a, work) -> dict:
    "Run `child` for (`task`, `path`) in a subprocess and return its numbers"
    cmd = [sys.executable, __file__, '--child', task, '--path', path, '--work', str(work), '--threads', str(a.threads),
           '--tok-workers', str(a.tok_workers)] + (['--quick'] if a.quick else [])
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    line = next((l for l in r.stdout.splitlines()[::-1] if l.startswith(MARK)), None)
    if r.returncode or line is None: sys.exit(f"{path} {task} failed (exit {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    res = json.loads(line[len(MARK):]); res['wall_s'] = time.perf_counter() - t
    print(f"  {task:5s} {path:6s} done in {res['wall_s']:.0f} s", flush=True)
    return res

# ---- report ---------------------------------------------------------------------------------------------------------------
def machine() -> str:
    "Cores and CPU model"
    model = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name')), platform.processor())
    return f"{os.cpu_count()} cores, {model}"

def versions() -> str:
    import torch, fastai, fastcore, spacy
    return f"python {platform.python_version()}, torch {torch.__version__}, fastai {fastai.__version__}, fastcore {fastcore.__version__}, spacy {spacy.__version__}"

UNIT = dict(lm='tokens', clas='docs', infer='docs')
NAME = dict(lm='LM fine-tuning (1 epoch)', clas='classifier training (1 epoch)', infer='classifier inference')
SETUP = dict(lm='DataLoaders', clas='DataLoaders', infer='model load')
HOW = dict(ours=dict(lm='`lm_dls` + `lm_learner` + `finetune_lm`', clas='`clas_dls` + `clas_learner` + `train_classifier`',
                     infer='`as_predictor` + `predict_texts`'),
           fastai=dict(lm='`TextBlock(is_lm=True)` + `language_model_learner` + `fit_one_cycle`',
                       clas='`TextBlock` + `CategoryBlock` + `text_classifier_learner` + `fit_one_cycle`',
                       infer='`load_learner` + `test_dl` + `get_preds`'))

def ratios(res) -> dict:
    "ours/fastai of setup time, throughput, peak RSS and peak growth, per task"
    out = {}
    for t in TASKS:
        o, f = res[t]['ours'], res[t]['fastai']
        out[t] = dict(setup=o['setup_s']/f['setup_s'], thru=(o['units']/o['run_s'])/(f['units']/f['run_s']),
                      thru_cpu=(o['units']/o['run_cpu_s'])/(f['units']/f['run_cpu_s']), peak=o['peak_mb']/f['peak_mb'],
                      growth=(o['peak_mb']-o['start_mb'])/max(f['peak_mb']-f['start_mb'], 1e-9))
    return out

def tables(res) -> str:
    "The markdown tables of results and ratios"
    s = ["| task | path | setup | setup s | run s | run CPU s | items | throughput | peak RSS MB | peak - start MB |",
         "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in TASKS:
        for p in PATHS:
            r = res[t][p]
            s.append(f"| {NAME[t]} | {p}: {HOW[p][t]} | {SETUP[t]} | {r['setup_s']:.1f} | {r['run_s']:.1f} | {r['run_cpu_s']:.1f} | {r['units']:,} {UNIT[t]} | "
                     f"{r['units']/r['run_s']:,.0f} {UNIT[t]}/s | {r['peak_mb']:.0f} | {r['peak_mb']-r['start_mb']:.0f} |")
    s += ["", "Ratios ours / fastai (setup time and memory: below 1 is better for ours; throughput: above 1 is better for ours; 'per CPU s' divides by the process's CPU time of the run instead of its wall time, "
          "which other jobs on the machine disturb less):", "",
          "| task | setup time | throughput | throughput per CPU s | peak RSS | peak - start |", "|---|---:|---:|---:|---:|---:|"]
    for t, q in ratios(res).items():
        s.append(f"| {NAME[t]} | {q['setup']:.2f} | {q['thru']:.2f} | {q['thru_cpu']:.2f} | {q['peak']:.2f} | {q['growth']:.2f} |")
    return '\n'.join(s)

def notes(res) -> str:
    o, f = res['lm']['ours'], res['lm']['fastai']
    return (f"- LM: vocabulary {o['vocab']:,} (ours) / {f['vocab']:,} (fastai) tokens (ours counts the training documents only, "
            f"fastai's `Tokenizer.from_df` counts every row, validation included; min_freq 3 on both), so ours' "
            f"softmax decoder is {f['vocab']/o['vocab']-1:.0%} smaller: part of the LM throughput ratio comes from that, not from the data path; {o['batches']} / {f['batches']} training batches; "
            f"validation pass {o['valid_s']:.1f} / {f['valid_s']:.1f} s (not in the run time).\n"
            f"- Ours with its on-disk token cache: first build {o['cache_cold_s']:.2f} s (tokenizes and writes the cache), "
            f"second build {o['cache_warm_s']:.2f} s (reads it back), vs {o['setup_s']:.1f} s uncached above.\n"
            f"- Classifier: {res['clas']['ours']['batches']} / {res['clas']['fastai']['batches']} training batches; validation "
            f"{res['clas']['ours']['valid_s']:.1f} / {res['clas']['fastai']['valid_s']:.1f} s.\n"
            f"- Wall time of each child process (s): " + ', '.join(f"{t} {p} {res[t][p]['wall_s']:.0f}" for t in TASKS for p in PATHS))

def chart(res, dest:Path):
    "Bar chart of the ours/fastai ratios"
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    q = ratios(res)
    keys = [('setup', 'setup time\n(<1 better)'), ('thru', 'throughput\n(>1 better)'), ('thru_cpu', 'throughput\nper CPU s (>1 better)'), ('peak', 'peak RSS\n(<1 better)'), ('growth', 'peak - start\n(<1 better)')]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    w = 0.27
    for i, t in enumerate(TASKS):
        xs = np.arange(len(keys)) + (i-1)*w
        ys = [q[t][k] for k, _ in keys]
        ax.bar(xs, ys, w, label=NAME[t])
        for x, y in zip(xs, ys): ax.text(x, y, f"{y:.2f}", ha='center', va='bottom', fontsize=7)
    ax.axhline(1, color='k', lw=0.8)
    ax.set_xticks(np.arange(len(keys)), [l for _, l in keys]); ax.set_ylabel('ours / fastai')
    ax.set_ylim(0, max(max(v.values()) for v in q.values()) * 1.25); ax.legend(fontsize=8, ncol=3, loc='upper center')
    ax.set_title('ulmfit_ext vs fastai stock path (AWD-LSTM 100/300/2, bs 64, bptt 70)', fontsize=9)
    fig.tight_layout(); fig.savefig(dest, dpi=120); plt.close(fig)

def header(a, n, wall) -> str:
    cmd = ' '.join(['.venv/bin/python', 'bench/bench_throughput.py'] + sys.argv[1:])
    return (f"# Throughput and memory: ulmfit_ext vs fastai's stock text path\n\n"
            f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; whole run {wall/60:.1f} min wall time\n"
            f"- Machine: {machine()}; shared with other jobs (load average at the end {os.getloadavg()[0]:.1f}); no GPU\n"
            f"- Versions: {versions()}\n"
            f"- Command: `{cmd}` ({'quick' if a.quick else 'full'} mode); torch threads {a.threads} per process; tokenizer workers "
            f"{a.tok_workers}; DataLoader workers 0; seed {SEED}\n"
            f"- Model: AWD-LSTM emb {SIZES['emb_sz']}, n_hid {SIZES['n_hid']}, {SIZES['n_layers']} layers, from scratch, both paths; "
            f"bs {BS}, bptt {BPTT}, 1 epoch; classifier head [50], max_len {BPTT*20}\n"
            f"- Data: imdb_sample (1,000 IMDb reviews) repeated, later copies cut to 30-100% of their words: LM {n['n_lm']:,} docs "
            f"(10% random validation), classifier {n['n_clas']:,} docs (validation = the sample's is_valid rows, 20%); inference "
            f"{n['n_infer']:,} texts cut to 5-100% (`bench_inference.load_texts`); spaCy tokenizer (fastai's default) on both paths\n"
            f"- Each (path, task) runs in a fresh subprocess; 'setup' is the DataLoader build (tokenization included; ours "
            f"uncached) or the model load; 'run' is the training phase of the epoch (validation excluded) or the prediction; "
            f"'peak - start' is ru_maxrss minus the RSS after imports and data loading\n\n")

def main():
    ap = argparse.ArgumentParser(description="Throughput and memory of ulmfit_ext's ULMFiT path vs fastai's stock text path (see the module docstring)")
    ap.add_argument('--quick', action='store_true', help=f"smaller run: {QUICK}")
    ap.add_argument('--threads', type=int, default=1, help='torch threads in each child process (the machine is shared)')
    ap.add_argument('--tok-workers', type=int, default=0, help='tokenizer worker processes of both paths (0: in-process)')
    ap.add_argument('--out', type=Path, default=RESULTS, help='folder for throughput.md and throughput.png')
    ap.add_argument('--child', choices=TASKS, help=argparse.SUPPRESS)
    ap.add_argument('--path', choices=PATHS, help=argparse.SUPPRESS)
    ap.add_argument('--work', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child: return child(a)
    sample_path()
    n, t0 = (QUICK if a.quick else FULL), time.perf_counter()
    print(f"{'quick' if a.quick else 'full'} mode {n}; torch threads {a.threads}; tokenizer workers {a.tok_workers}", flush=True)
    with tempfile.TemporaryDirectory() as d:
        res = {t: {p: run_child(t, p, a, Path(d)) for p in PATHS} for t in TASKS}
    wall = time.perf_counter() - t0
    md = header(a, n, wall) + tables(res) + "\n\n" + notes(res) + "\n"
    print(md)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out/'throughput.md').write_text(md)
    chart(res, a.out/'throughput.png')
    print(f"wrote {a.out/'throughput.md'} and {a.out/'throughput.png'} ({wall/60:.1f} min)")

if __name__ == '__main__': main()
