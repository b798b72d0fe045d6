"""Train and export the package's own Stage-1 language models (`ulmfit_ext/models/<name>/{fwd,bwd}`), with their model card.

    python tools/train_stage1.py train --direction fwd   # resumable: run it again after an interruption and it continues
    python tools/train_stage1.py train --direction bwd   # (in another shell: one core each)
    python tools/train_stage1.py export                  # float16 bundles into the package, MODEL_CARD.md, the digests to pin

The recipe (chosen by `bench/bench_stage1.py`, see BENCHMARKS.md) is the default of every option below. Training data: the
shippable general-English corpus (`ulmfit build-corpus --shippable`: Project Gutenberg books with their headers and licence
removed, State of the Union and inaugural addresses; Brown is left out, its licence is non-commercial)."""
import argparse, json, os, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = dict(tokenizer='spm', vocab_sz=8000, emb_sz=64, n_hid=128, n_layers=2, n_epoch=1, max_tokens=10_000_000, lr=1e-2, drop_mult=0.2, bs=64, bptt=70)

def work(name) -> Path:
    from ulmfit_ext.core import cache_dir
    return cache_dir('stage1', 'ship', name)

def corpus(name) -> Path:
    "The shippable corpus, its training paragraphs in a seeded random order (the rule of `bench/bench_stage1.py`: a token budget is a random sample)"
    import random
    from ulmfit_ext.corpus import build_corpus
    d = work(name)/'corpus'
    if not (d/'manifest.json').exists(): build_corpus(d, shippable=True, overwrite=True)
    if not (d/'train_shuffled.txt').exists():
        paras = (d/'train.txt').read_text(encoding='utf-8').split('\n\n')
        random.Random(0).shuffle(paras)
        (d/'train_shuffled.txt').write_text('\n\n'.join(paras), encoding='utf-8')
    return d

def train(a):
    import torch
    from ulmfit_ext.pretrain import pretrain_lm
    torch.set_num_threads(a.threads)
    d = corpus(a.name)
    r = RECIPE
    for bw in {'fwd': [False], 'bwd': [True], 'both': [False, True]}[a.direction]:
        out = work(a.name)/('bwd' if bw else 'fwd')
        t = time.time()
        res = pretrain_lm(d/'train_shuffled.txt', out, preset='small', valid=d/'valid.txt', n_epoch=r['n_epoch'], max_tokens=r['max_tokens'],
                          lr=r['lr'], bs=r['bs'], bptt=r['bptt'],
                          config=dict(emb_sz=r['emb_sz'], n_hid=r['n_hid'], n_layers=r['n_layers']), drop_mult=r['drop_mult'],
                          tokenizer=r['tokenizer'], vocab_sz=r['vocab_sz'], backwards=bw, resume=True, seed=42)
        print(res, f"({time.time() - t:.0f} s this run)", flush=True)

def _secs(t:str) -> int: return sum(int(x) * 60**i for i, x in enumerate(reversed(t.split(':'))))

def export(a):
    from ulmfit_ext.bundle import load_bundle, save_bundle, build_model, bundle_digest, models_dir
    from ulmfit_ext.pretrain import word_perplexity
    from ulmfit_ext.core import dataset_path
    dest, digests, rows = models_dir()/a.name, {}, {}
    man = json.loads((corpus(a.name)/'manifest.json').read_text())
    for d in ('fwd', 'bwd'):
        run = Path(getattr(a, d) or work(a.name)/d)
        m = json.loads((run/'metrics.json').read_text())
        b = load_bundle(run/'bundle')
        wt2 = dataset_path('wikitext2')
        w = word_perplexity(b, wt2/'test.txt') if wt2 else None
        save_bundle(dest/d, b.build_model(), b.vocab, 'lm', tokenizer=b.build_tokenizer(), backwards=d == 'bwd', bptt=b.config.get('bptt'),
                    metrics=dict(corpus_valid_perplexity=m['perplexity'], wikitext2_test_perplexity_per_word=w and w['perplexity']),
                    data_desc=dict(corpus='ulmfit build-corpus --shippable', train_tokens=m['data']['train_tokens'], epochs=len(m['epochs'])),
                    half=True, overwrite=True)
        digests[d] = bundle_digest(dest/d)
        st = json.loads((run/'settings.json').read_text())
        rows[d] = dict(settings={k: st.get(k) for k in ('corpus', 'n_epoch', 'max_tokens', 'lr', 'bs', 'bptt', 'drop_mult', 'config', 'tokenizer', 'vocab_sz', 'backwards', 'seed')},
                       valid=m['perplexity'], wt2=w, epochs=m['epochs'], tokens=m['data']['train_tokens'], hours=sum(_secs(e['time']) for e in m['epochs']) / 3600)
    (dest/'MODEL_CARD.md').write_text(card(a.name, rows, man, digests, b))
    print(json.dumps(digests, indent=1))
    print(f"Pin these in nbs/04a_bundle.ipynb: shipped_models[{a.name!r}] = dict(fwd=..., bwd=...)")

def card(name, rows, man, digests, b) -> str:
    c = b.config['awd_lstm']
    src = '\n'.join(f"| {s['name']} | {s.get('licence', '')} | {s.get('train', {}).get('words', 0):,} |" for s in man.get('sources', []))
    per = '\n'.join(f"| {d} | {r['tokens']:,} | {len(r['epochs'])} | {r['hours']:.1f} h | {r['valid']:.1f} | " + (f"{r['wt2']['perplexity']:.0f} ({r['wt2']['tokens_per_word']:.2f} pieces a word)" if r['wt2'] else 'not measured') + ' |'
                    for d, r in rows.items())
    settings = '\n'.join(f"  - {d}: `{json.dumps(r['settings'])}`" for d, r in rows.items())
    return f"""# Model card: `{name}` (forward and backward)

The package's own general-English Stage-1 language models: the offline default of `lm_learner(dls, pretrained={name!r})`, `ulmfit finetune-lm --pretrained {name}`, and `make demo`.

- **Architecture**: fastai's AWD-LSTM language model, embedding {c['emb_sz']}, {c['n_layers']} LSTM layers of {c['n_hid']} hidden units, tied decoder; {sum(v.numel() for v in b.state_dict.values()):,} parameters; stored as float16 (loaded as float32).
- **Tokenizer**: a SentencePiece unigram model of {len(b.vocab)} pieces (fastai's special tokens first), trained on the training corpus; it is in the bundle (`spm.model`). A task tokenized with it shares the vocabulary exactly: Stage 2 remaps nothing.
- **Training**: `python tools/train_stage1.py train --direction fwd` and `--direction bwd`, one CPU core each, recipe `{json.dumps(RECIPE)}` (slanted triangular LR, gradient clipping 0.3, Adam β 0.7/0.99), resumable per epoch.
- **The runs exported**: their own `settings.json`, as `pretrain_lm` recorded them:
{settings}
- **Digests** (sha256 of each bundle's provenance.json, pinned in `ulmfit_ext.bundle.shipped_models`): fwd `{digests['fwd']}`, bwd `{digests['bwd']}`.

## Data
`ulmfit build-corpus --shippable`: clean, deduplicated paragraphs; 2 % held out by paragraph hash.

| source | licence | training words |
|---|---|---|
{src}

Not in the training data: Brown (non-commercial licence), WikiText-2 (evaluation only). Training read the first 10M pieces of the
training paragraphs in a seeded random order (`random.Random(0).shuffle`, the rule of `corpus()` above and of `bench/bench_stage1.py`),
so a run of this script trains on the same text whatever path the runs' settings show.

## Results

| model | training tokens | epochs | training time | held-out perplexity (pieces) | WikiText-2 test perplexity per word |
|---|---|---|---|---|---|
{per}

WikiText-2 perplexity per word counts every word, rare ones included, so it is not comparable with a closed-vocabulary word model's
(whose `xxunk` hides the cost of rare words). Transfer to classification with the package's defaults is measured in BENCHMARKS.md ("Stage-1 recipes" and "The defaults").

## Use and limits
General English of the 18th to early 20th century (most of the words are from Project Gutenberg books) and political speeches; no web text, no modern technical vocabulary. It is small, trained on 2 CPU cores: fastai's WikiText-103 model (`pretrained='wt103'`, downloaded) is larger and better when it can be downloaded and a GPU is at hand. The licence of the weights follows the data: public domain (Gutenberg texts with the Project Gutenberg trademark material removed; US government works).
"""

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('what', choices=('train', 'export')); p.add_argument('--name', default='ulmfit-en')
    p.add_argument('--direction', choices=('fwd', 'bwd', 'both'), default='both'); p.add_argument('--threads', type=int, default=1)
    p.add_argument('--fwd', help='export: the `pretrain_lm` folder of the forward run (default: where `train` writes it)')
    p.add_argument('--bwd', help='export: the `pretrain_lm` folder of the backward run')
    a = p.parse_args()
    train(a) if a.what == 'train' else export(a)
