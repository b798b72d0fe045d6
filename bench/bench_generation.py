"""Benchmark: LM text generation with kept hidden state (`ulmfit_ext.generate.generate`) vs fastai's `LMLearner.predict`,
which resets the model and re-reads the whole text for every new word.

    python bench/bench_generation.py                # 100 words, emb 100 / n_hid 300 / 2 layers, vocab ~5k
    python bench/bench_generation.py --quick        # 50 words
    python bench/bench_generation.py --n-words 200 --threads 2

Prints both times and their ratio and writes bench/results/generation.md (not a test: nothing is asserted)."""
import argparse, platform, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, write_md
import numpy as np, pandas as pd, torch
from fastai.text.all import BaseTokenizer, ColReader, DataBlock, RandomSplitter, TextBlock, defaults
from ulmfit_ext.learner import lm_learner
from ulmfit_ext.generate import generate

def make_learner(vocab_sz:int, seed:int=0):
    "An untrained LM learner (emb 100, n_hid 300, 2 layers) on fastai `TextBlock` data with a fixed vocabulary of `vocab_sz` words"
    rng = np.random.default_rng(seed)
    words = [f'w{i}' for i in range(vocab_sz - len(defaults.text_spec_tok))]
    vocab = list(defaults.text_spec_tok) + words
    texts = [' '.join(rng.choice(words, size=int(rng.integers(20, 60)))) for _ in range(200)]
    tb = TextBlock.from_df('text', is_lm=True, vocab=vocab, seq_len=70, tok=BaseTokenizer(), n_workers=0)
    dls = DataBlock(blocks=tb, get_x=ColReader('text'), splitter=RandomSplitter(0.1, seed=0)).dataloaders(
        pd.DataFrame({'text': texts}), bs=16, seq_len=70, num_workers=0)
    torch.manual_seed(seed)
    return lm_learner(dls, config=dict(emb_sz=100, n_hid=300, n_layers=2)), words

def timed(f, repeat:int) -> float:
    "Best wall time of `repeat` calls of `f` (seconds)"
    ts = []
    for _ in range(repeat):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return min(ts)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n-words', type=int, default=100, help='tokens to generate')
    ap.add_argument('--vocab', type=int, default=5000, help='vocabulary size')
    ap.add_argument('--prompt-words', type=int, default=20, help='words in the prompt')
    ap.add_argument('--threads', type=int, default=1, help='torch threads')
    ap.add_argument('--repeat', type=int, default=2, help='runs per method (the best is reported)')
    ap.add_argument('--quick', action='store_true', help='50 words, one run each')
    a = ap.parse_args()
    if a.quick: a.n_words, a.repeat = 50, 1
    torch.set_num_threads(a.threads)
    learn, words = make_learner(a.vocab)
    prompt = ' '.join(words[:a.prompt_words])
    generate(learn, prompt, n_words=2, seed=0); learn.predict(prompt, n_words=2, no_bar=True)   # warm-up
    t_ours = timed(lambda: generate(learn, prompt, n_words=a.n_words, seed=0), a.repeat)
    t_fastai = timed(lambda: learn.predict(prompt, n_words=a.n_words, no_bar=True), a.repeat)
    print(f"LM: AWD-LSTM emb 100, n_hid 300, 2 layers, vocab {len(learn.dls.vocab)}; prompt {a.prompt_words} words; "
          f"{a.n_words} generated tokens; torch threads {a.threads}; CPU ({platform.processor() or platform.machine()})")
    print(f"ulmfit_ext generate (kept state):   {t_ours:8.3f} s  ({a.n_words / t_ours:7.1f} tokens/s)")
    print(f"fastai LMLearner.predict (re-read): {t_fastai:8.3f} s  ({a.n_words / t_fastai:7.1f} tokens/s)")
    print(f"speed-up: {t_fastai / t_ours:.1f}x")
    md = header('Text generation: `generate` vs fastai `LMLearner.predict`', a,
                f"- LM: untrained AWD-LSTM emb 100, n_hid 300, 2 layers, vocabulary {len(learn.dls.vocab):,}, fastai `TextBlock` data; prompt of {a.prompt_words} words; "
                f"best of {a.repeat} runs each, seed 0\n"
                "- `generate` reads the prompt once, then runs each token through `_Steps` (embedding, `torch.lstm_cell` per layer, decoder) and samples on tensors; "
                "fastai's `predict` resets the model and re-reads the whole text for every new word\n")
    md += (f"| method | seconds for {a.n_words} tokens | tokens/s | ms per token |\n|---|---:|---:|---:|\n"
           f"| ulmfit_ext `generate` | {t_ours:.3f} | {a.n_words/t_ours:.0f} | {1000*t_ours/a.n_words:.2f} |\n"
           f"| fastai `LMLearner.predict` | {t_fastai:.3f} | {a.n_words/t_fastai:.0f} | {1000*t_fastai/a.n_words:.2f} |\n\n"
           f"Speed-up: **{t_fastai / t_ours:.1f}×**.\n")
    write_md('generation' + ('_quick' if a.quick else ''), md)

if __name__ == '__main__': main()
