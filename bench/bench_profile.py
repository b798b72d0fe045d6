"""Benchmark: where `predict_texts` spends its time, before and after issue 15's changes, for a small and a paper-size
AWD-LSTM classifier on real IMDb reviews, with 1 and 2 torch threads.

    python bench/bench_profile.py              # 10,000 test reviews (small model), 500 of them (paper-size model)
    python bench/bench_profile.py --quick      # 1,000 / 100

Stages, as `predict_texts` runs them (texts in chunks of 4,096, sorted by length, batches of 64):
- tokenization: fastai's rules + spaCy tokenizer. "before": fastai's `TokenizeWithRules`; "after": `_SpacyRules` (same tokens).
- numericalization + batching: token -> id lookups, cutting, sorting into batches (and, before, padding each batch to a
  multiple of bptt with fastai's `pad_chunk`).
- model: "before": fastai's `SentenceEncoder` forward on the padded batch; "after": `_clas_logits` (each text read only as
  far as the batch's longest unread text); "after, int8": the same on the int8 copy (`Predictor.quantized()`).
Tokenization and numericalization do not use torch threads; they are timed once per variant and text set.
Weights are random (speed does not depend on them). Not a test: nothing is asserted."""
import os, sys, time
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import imdb_reviews, header, write_md, save_json, RESULTS, peak_rss_mb
import argparse

SMALL_NAME = 'small 64/128/2'
CFGS = {'small 64/128/2': dict(emb_sz=64, n_hid=128, n_layers=2), 'paper 400/1152/3': dict(emb_sz=400, n_hid=1152, n_layers=3)}

def make_predictor(cfg, texts, seed=0):
    "A random-weight classifier (`get_text_classifier`, bptt 70, max_len 1400, head [50]) on a vocabulary of the texts' tokens (min freq 3, at most 60,000)"
    from collections import Counter
    from fastai.text.all import AWD_LSTM, get_text_classifier, Tokenizer, SpacyTokenizer, make_vocab, awd_lstm_clas_config
    from ulmfit_ext.inference import Predictor
    tok = Tokenizer(SpacyTokenizer())
    p0 = Predictor(torch.nn.Module(), ['xxunk'], ['neg', 'pos'], tokenizer=tok, kind='lm')
    vocab = make_vocab(Counter(t for ts in p0.tokenize(texts[:3000]) for t in ts), min_freq=3, max_vocab=60000)
    torch.manual_seed(seed)
    m = get_text_classifier(AWD_LSTM, len(vocab), 2, seq_len=70, config={**awd_lstm_clas_config, **cfg}, max_len=1400).eval()
    return Predictor(m, vocab, ['neg', 'pos'], tokenizer=tok, source='random weights')

def stage_times(p, texts, variant, bs=64, chunk_size=4096):
    "(seconds per stage, ids per batch, probabilities) of one pass over `texts`; `variant` 'before' or 'after' for the tokenizer"
    from fastai.text.all import TokenizeWithRules
    from ulmfit_ext.tokens import _tok_texts
    from ulmfit_ext.inference import _chunk_batches, _chunk_bounds, _pad_batch
    from ulmfit_ext.tokens import _SpacyRules
    tkz = (TokenizeWithRules if variant == 'before' else _SpacyRules)(p.tokenizer.tok, rules=p.tokenizer.rules)
    t, batches = dict(tok=0., num=0.), []
    for s, e in _chunk_bounds(len(texts), chunk_size):
        t0 = time.perf_counter(); toks = _tok_texts(tkz, texts[s:e]); t1 = time.perf_counter()
        ids = [p.numericalize(x) for x in toks]
        for b in _chunk_batches(np.array([len(x) for x in ids]), bs):
            bi = [ids[i] for i in b]
            batches.append((s + b, _pad_batch(bi, p.pad_idx, p.bptt) if variant == 'before' else bi))
        t['tok'] += t1 - t0; t['num'] += time.perf_counter() - t1
    return t, batches

def model_time(p, batches, n, variant):
    "Seconds the model stage takes over the prepared `batches`, and the probabilities (input order)"
    import torch.nn.functional as F
    from ulmfit_ext.inference import _eval_mode
    out = np.zeros((n, 2), dtype=np.float32)
    t = time.perf_counter()
    for rows, b in batches:
        if variant == 'before':
            with _eval_mode(p.model): out[rows] = F.softmax(p.model(b)[0].float(), -1).numpy()
        else: out[rows] = p.probs_of(b)
    return time.perf_counter() - t, out

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=10000, help='reviews for the small model')
    ap.add_argument('--n-paper', type=int, default=500, help='reviews for the paper-size model')
    ap.add_argument('--div2', type=int, default=5, help='the 2-thread rows use the first 1/div2 of the reviews')
    ap.add_argument('--quick', action='store_true', help='1,000 / 100 reviews')
    ap.add_argument('--name', default='profile')
    a = ap.parse_args(); a.threads = '1 and 2'
    if a.quick: a.n, a.n_paper = 1000, 100
    df = imdb_reviews(max(a.n, a.n_paper))
    texts = df.text.tolist()
    words = np.array([len(t.split()) for t in texts[:a.n]])
    rows, res = [], {}
    for name, cfg in CFGS.items():
        n = a.n if name.startswith('small') else a.n_paper
        tx = texts[:n]
        p = make_predictor(cfg, texts)
        q = p.quantized()
        for th in (1, 2):
            if th == 2: n = max(1, n // a.div2); tx = tx[:n]
            prep = {v: stage_times(p, tx, v) for v in ('before', 'after')}
            ntok = sum(len(x) for _, b in prep['after'][1] for x in b)
            torch.set_num_threads(th)
            for label, v, pred in (('before', 'before', p), ('after', 'after', p), ('after, int8', 'after', q)):
                (st, batches), (mt, probs) = prep[v], model_time(pred, prep[v][1], n, 'before' if label == 'before' else 'after')
                res[name, th, label] = probs
                tot = st['tok'] + st['num'] + mt
                rows.append(dict(model=name, texts=n, tokens=ntok, threads=th, pipeline=label, tok_s=st['tok'], num_s=st['num'], model_s=mt, total_s=tot, docs_s=n/tot))
                print(rows[-1], flush=True)
        d_after = np.abs(res[name, 1, 'before'] - res[name, 1, 'after']).max()
        d_int8 = np.abs(res[name, 1, 'before'] - res[name, 1, 'after, int8']).max()
        rows.append(dict(model=name, agree_after=float(d_after), agree_int8=float(d_int8)))
    md = header('Profile of `predict_texts`: tokenization, numericalization/batching, model', a,
                f"- data: {a.n:,} random IMDb test reviews (aclImdb, seed 0; {words.sum():,} words, median {int(np.median(words))}, max {words.max():,}) for the small model, "
                f"the first {a.n_paper:,} of them for the paper-size one (its model stage alone takes minutes per thousand reviews on this CPU)\n"
                "- classifiers: fastai `get_text_classifier` AWD-LSTM, bptt 70, max_len 1400, head [50], **random weights** (timing only); vocabulary of the reviews' tokens\n"
                f"- the 2-thread rows use the first 1/{a.div2} of the reviews; this machine's 2 cores were shared with another job using one of them; "
                f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')} (with the default, spinning, policy two threads wait for each other at every OpenMP barrier while the other job holds a core, see BENCHMARKS.md)\n"
                "- tokenization and numericalization/batching are timed once per pipeline and text set (they use no torch threads); "
                f"peak RSS of the run {peak_rss_mb():.0f} MB\n")
    md += "| model | texts | tokens | threads | pipeline | tokenization s (%) | numericalize + batch s (%) | model s (%) | total s | docs/s |\n|---|---:|---:|---:|---|---:|---:|---:|---:|---:|\n"
    for r in rows:
        if 'total_s' not in r: continue
        pc = lambda x: f"{x:.1f} ({100*x/r['total_s']:.0f} %)"
        md += f"| {r['model']} | {r['texts']:,} | {r['tokens']:,} | {r['threads']} | {r['pipeline']} | {pc(r['tok_s'])} | {pc(r['num_s'])} | {pc(r['model_s'])} | {r['total_s']:.1f} | {r['docs_s']:.1f} |\n"
    md += "\nAgreement with the 'before' probabilities (1 thread), max |Δp|: " + '; '.join(f"{r['model']}: after {r['agree_after']:.1e}, int8 {r['agree_int8']:.1e}" for r in rows if 'agree_after' in r) + ".\n"
    write_md(a.name, md); save_json(rows, RESULTS/f'{a.name}.json')
    print(md)

if __name__ == '__main__': main()
