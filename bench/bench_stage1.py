"""Which Stage-1 recipe transfers: candidates pretrained on the shippable general-English corpus (`ulmfit build-corpus
--shippable`) for about the same wall time, each judged by WikiText-2 test perplexity per word (comparable across word and
SentencePiece vocabularies) and by the validation accuracy of the package's default Stage 2 + 3 on TREC-6 and on the IMDb
sample. Also the throughput of each against the CPU's matrix-multiply peak, and transfer against Stage-1 training time.

    python bench/bench_stage1.py --name C_spm8k_128 --tokenizer spm --vocab 8000 --size 128,256,2 --tokens 6700000
    python bench/bench_stage1.py --name demo --bundle ~/.cache/ulmfit_ext/stage1/demo-small/bundle   # judge an existing LM
    python bench/bench_stage1.py --report-only

Pretraining: one epoch (every token seen once) over the first `--tokens` tokens of the corpus's training paragraphs in a
seeded random order, validation on the corpus's own held-out paragraphs, `pretrain_lm` with STLR peaking at `--lr`, `--drop`
times the paper's LM dropouts. Transfer: `pipeline.stage2` + `stage3` with every default (the validation split is carved
from the training data; the test sets are not used)."""
import argparse, json, math, os, random, sys, time
from pathlib import Path
import numpy as np, pandas as pd
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C

PEAK_GFLOPS_PER_CORE = 105   # about 210 GFLOP/s fp32 on the 2 cores of the development machine (issue 12)

def corpus(overwrite=False) -> Path:
    "The shippable corpus, built once, with its training paragraphs in a seeded random order (so a token budget is a random sample)"
    from ulmfit_ext.corpus import build_corpus
    d = C.cache_dir_bench('stage1', 'corpus_shippable')
    if not (d/'manifest.json').exists(): build_corpus(d, shippable=True, overwrite=True, progress=False)
    shuf = d/'train_shuffled.txt'
    if not shuf.exists():
        paras = (d/'train.txt').read_text(encoding='utf-8').split('\n\n')
        random.Random(0).shuffle(paras)
        shuf.write_text('\n\n'.join(paras), encoding='utf-8')
    return d

def _secs(t:str) -> int:
    "Seconds of fastai's 'mm:ss' or 'h:mm:ss'"
    return sum(int(x) * 60**i for i, x in enumerate(reversed(t.split(':'))))

def pretrain_figures(metrics) -> dict:
    "Tokens trained on, training seconds (the epochs' own times: no tokenization) and held-out perplexity of a `pretrain_lm` run"
    m = json.loads(Path(metrics).read_text())
    return dict(tokens=m['data']['train_tokens'] * len(m['epochs']), train_s=sum(_secs(e['time']) for e in m['epochs']), corpus_valid_ppl=m['perplexity'])

def lm_macs(emb, hid, nl, vocab) -> int:
    "Multiply-adds of one token through the AWD-LSTM LM (LSTM layers + tied decoder)"
    sizes = [emb] + [hid] * (nl - 1) + [emb]
    return sum(4 * o * (i + o) for i, o in zip(sizes[:-1], sizes[1:])) + emb * vocab

def transfer(bundle, backwards=False) -> dict:
    "Validation accuracy of the package's default Stage 2 + 3 on TREC-6 and the IMDb sample, from `bundle`"
    from ulmfit_ext.pipeline import stage2, stage3
    sets = dict(trec6=lambda: (lambda d: d[d.split != 'test'])(C.trec6()), imdb_sample=lambda: (lambda d: d[~d.is_valid])(pd.read_csv(C.shared('imdb_sample')/'texts.csv')))
    out = {}
    for name, load in sets.items():
        df = load()[['text', 'label']]
        if os.environ.get('BENCH_SMOKE'): df = C.stratified_split(df, 200/len(df), 0).query("split == 'valid'")[['text', 'label']]
        t = time.time()
        lm = stage2(df, bundle, backwards=backwards, progress=False)
        cl = stage3(df, lm, progress=False)
        out[name] = dict(valid_acc=cl.report.best['accuracy'], lm_valid_loss=lm.report.best['valid_loss'], clas_lr=cl.report.lr,
                         best_epoch=cl.report.best_epoch, epochs_run=cl.report.epochs_run, seconds=round(time.time() - t))
        print(f"  transfer {name}: valid acc {out[name]['valid_acc']:.4f} ({out[name]['seconds']} s)", flush=True)
    return out

def run(a) -> dict:
    from ulmfit_ext.pretrain import pretrain_lm, word_perplexity
    from ulmfit_ext.bundle import load_bundle
    r = dict(name=a.name)
    if a.bundle:   # an LM pretrained elsewhere; its training figures are read when its `pretrain_lm` folder is there
        bundle = Path(a.bundle).expanduser()
        if (bundle.parent/'metrics.json').exists():
            s = json.loads((bundle.parent/'settings.json').read_text()) if (bundle.parent/'settings.json').exists() else {}
            r.update(pretrain_figures(bundle.parent/'metrics.json'), lr=s.get('lr'), drop=s.get('drop_mult'), var_bptt=s.get('var_bptt', False))
    else:
        d = corpus()
        emb, hid, nl = map(int, a.size.split(','))
        out = C.cache_dir_bench('stage1', 'runs', a.name)
        t = time.time()
        res = pretrain_lm(d/'train_shuffled.txt', out, preset='small', valid=d/'valid.txt', n_epoch=1, lr=a.lr, bs=64, max_tokens=a.tokens,
                          config=dict(emb_sz=emb, n_hid=hid, n_layers=nl), drop_mult=a.drop, tokenizer=a.tokenizer,
                          max_vocab=a.vocab if a.tokenizer == 'spacy' else None, vocab_sz=a.vocab if a.tokenizer == 'spm' else None,
                          backwards=a.backwards, var_bptt=a.var_bptt, progress=False)
        r.update(tokenizer=a.tokenizer, vocab=a.vocab, size=a.size, lr=a.lr, drop=a.drop, var_bptt=a.var_bptt, wall_s=round(time.time() - t),
                 **pretrain_figures(out/'metrics.json'))
        bundle = res.bundle
    b = load_bundle(bundle); awd = b.config['awd_lstm']
    r.update(bundle=str(bundle), emb_sz=awd['emb_sz'], n_hid=awd['n_hid'], n_layers=awd['n_layers'], vocab_sz=len(b.vocab),
             params_m=round(sum(v.numel() for v in b.state_dict.values()) / 1e6, 2), tokenizer_kind=b.tokenizer_spec['tokenizer'])
    w = C.shared('wikitext2')/'test.txt'
    r['wt2_test'] = word_perplexity(b, w) if not os.environ.get('BENCH_SMOKE') else word_perplexity(b, C.shared('wikitext2')/'valid.txt', bs=4)
    print(f"  WikiText-2 test: {r['wt2_test']['perplexity']:.1f} per word", flush=True)
    r['transfer'] = transfer(bundle, a.backwards)
    return r

def report(rows, args) -> str:
    lines = ['| candidate | tokenizer, vocab | AWD-LSTM | params | tokens seen | pretraining time | tokens/s | % of peak | WT2 test ppl/word | TREC-6 valid acc | IMDb-sample valid acc |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        tps = r['tokens'] / r['train_s'] if r.get('train_s') else None
        flops = 6 * lm_macs(r['emb_sz'], r['n_hid'], r['n_layers'], r['vocab_sz'])
        peak = f"{100 * tps * flops / (PEAK_GFLOPS_PER_CORE * 1e9):.0f} %" if tps else '–'
        t = r['transfer']
        lines.append(f"| {r['name']} | {r['tokenizer_kind']}, {r['vocab_sz']} | {r['emb_sz']}/{r['n_hid']}/{r['n_layers']} | {r['params_m']}M | "
                     f"{(r['tokens'] / 1e6):.1f}M | {(r['train_s'] or 0) / 60:.0f} min | {tps:,.0f} | {peak} | " if tps else
                     f"| {r['name']} | {r['tokenizer_kind']}, {r['vocab_sz']} | {r['emb_sz']}/{r['n_hid']}/{r['n_layers']} | {r['params_m']}M | – | – | – | – | ")
        lines[-1] += f"{r['wt2_test']['perplexity']:.0f} | {100 * t['trec6']['valid_acc']:.2f} | {100 * t['imdb_sample']['valid_acc']:.2f} |"
    head = C.header('Stage-1 recipes: what transfers', args, '- one epoch over the first N tokens of the shippable corpus (shuffled paragraphs), one torch thread each, two runs side by side; '
                    '% of peak: 6 x (multiply-adds per token) x tokens/s over 105 GFLOP/s (one core)\n- transfer: validation accuracy of the default Stage 2 + 3 (TREC-6 546 questions, IMDb sample 80 reviews: noisy)\n')
    return head + '\n'.join(lines) + '\n'

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--name'); p.add_argument('--bundle', default=None, help='judge an existing Stage-1 bundle instead of pretraining one')
    p.add_argument('--tokenizer', default='spm', choices=('spm', 'spacy')); p.add_argument('--vocab', type=int, default=8000)
    p.add_argument('--size', default='128,256,2', help='emb_sz,n_hid,n_layers'); p.add_argument('--tokens', type=int, default=5_000_000)
    p.add_argument('--lr', type=float, default=1e-2); p.add_argument('--drop', type=float, default=0.2)
    p.add_argument('--var-bptt', action='store_true'); p.add_argument('--backwards', action='store_true')
    p.add_argument('--threads', type=int, default=1); p.add_argument('--report-only', action='store_true')
    a = p.parse_args(); a.threads = C.threads(a.threads)
    raw = C.RESULTS/'stage1.raw.json'
    rows = json.loads(raw.read_text()) if raw.exists() else {}
    if not a.report_only:
        if not a.name: sys.exit('error: --name is required (the candidate\'s name in the report)')
        r = run(a)
        rows = {**(json.loads(raw.read_text()) if raw.exists() else {}), a.name: r}
        C.save_json(rows, raw)
    md = report(list(rows.values()), a)
    C.write_md('stage1', md); print(md)

if __name__ == '__main__': main()
