"Tests of `ulmfit_ext.subword`: SentencePiece models trained (and cached) in a second, the tokenizer, its fixed vocabulary in `lm_dls`/`clas_dls`."
import os, pickle, random, string
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from fastai.text.all import SentencePieceTokenizer, Tokenizer, defaults, compose
from ulmfit_ext.core import UlmfitError
from ulmfit_ext.data import lm_dls, clas_dls, _token_ids
from ulmfit_ext.tokens import tokenize_corpus
from ulmfit_ext.subword import train_spm, spm_vocab, SpmTokenizer, spm_tokenizer

FAST = dict(progress=False, n_workers=0)
TRAIN = dict(num_threads=1, progress=False)

@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    "Every test gets its own empty cache root"
    monkeypatch.setenv('ULMFIT_CACHE', str(tmp_path/'cache'))

def toy_texts(n, seed=0):
    rng = random.Random(seed)
    words = "the a cat dog bird sat ran sang on under mat tree house and quickly happily Paris London".split()
    return [' '.join(rng.choice(words) for _ in range(rng.randint(6, 20))).capitalize() + '.' for _ in range(n)]

def test_train_spm_is_cached_by_input_and_settings(tmp_path):
    texts = toy_texts(300)
    m = train_spm(texts, vocab_sz=60, **TRAIN)
    assert m.is_file() and m.parent.parent == tmp_path/'cache'/'spm' and (m.parent/'settings.json').is_file()
    t0 = m.stat().st_mtime_ns
    assert train_spm(texts, vocab_sz=60, **TRAIN) == m and m.stat().st_mtime_ns == t0          # reused, not retrained
    assert train_spm(texts, vocab_sz=60, model_type='bpe', **TRAIN) != m                         # other settings
    assert train_spm(texts[:-1], vocab_sz=60, **TRAIN) != m                                      # other text
    assert train_spm(texts, vocab_sz=60, cache=False, **TRAIN) == m and m.stat().st_mtime_ns != t0   # retrained in place
    assert not list((tmp_path/'cache'/'spm').glob('.train-*'))                                  # no temporary folders left

def test_train_spm_reads_corpus_paths(tmp_path):
    (tmp_path/'c').mkdir()
    (tmp_path/'c'/'a.txt').write_text('\n\n'.join(toy_texts(100)))
    (tmp_path/'c'/'b.txt').write_text('\n\n'.join(toy_texts(100, seed=1)))
    m = train_spm(tmp_path/'c', vocab_sz=60, split='para', **TRAIN)
    assert '▁cat' in spm_vocab(m)
    pd.DataFrame({'review': toy_texts(50)}).to_csv(tmp_path/'r.csv', index=False)
    assert train_spm(tmp_path/'r.csv', vocab_sz=60, text_col='review', **TRAIN).is_file()

def test_vocab_and_special_tokens():
    m = train_spm(toy_texts(300), vocab_sz=60, **TRAIN)
    v = spm_vocab(m)
    assert v[:9] == defaults.text_spec_tok and len(v) % 8 == 0 and len(set(v) - {'xxfake'}) == len(v) - v.count('xxfake')
    assert not any(t.startswith('▁xx') for t in v) and '<unk>' not in v
    tok = SpmTokenizer(m)
    toks = next(tok([compose(*defaults.text_proc_rules)("The CAT sat in PARIS.")]))
    assert toks[:2] == ['xxbos', 'xxmaj'] and 'xxup' in toks and all(t in v for t in toks)
    assert tok.fixed_vocab == v and tok.vocab_sz <= 60
    assert next(pickle.loads(pickle.dumps(tok))(['a dog ran'])) == next(tok(['a dog ran']))
    tkz = spm_tokenizer(m)
    assert isinstance(tkz, Tokenizer) and list(tkz("The CAT sat in PARIS.")) == toks   # fastai's rules, then the model

def test_lm_and_clas_dls_use_the_model_vocabulary():
    tkz = spm_tokenizer(toy_texts(300), vocab_sz=60, **TRAIN)
    v = tkz.tok.fixed_vocab
    df = pd.DataFrame({'text': toy_texts(60, seed=2), 'label': ['a', 'b']*30})
    dls = lm_dls(df, toy_texts(40, seed=3), tok=tkz, bs=4, bptt=10, seed=0, min_freq=5, max_vocab=10, **FAST)
    assert list(dls.vocab) == v                                   # min_freq/max_vocab do not apply
    x, y = dls.one_batch()
    assert (x == 0).float().mean() < 0.02                         # hardly any xxunk: the pieces are in the vocabulary
    dc = clas_dls(df, vocab=dls, bs=8, bptt=10, seed=0, **FAST)   # the LM's tokenizer comes along
    assert list(dc.vocab[0]) == v
    assert isinstance(_token_ids(dc).tok, SpmTokenizer)
    assert torch.equal(_token_ids(dc)('The cat sat.'), _token_ids(dls)('The cat sat.'))
    bwd = lm_dls(df, tok=tkz, bs=4, bptt=10, seed=0, backwards=True, **FAST)
    assert list(bwd.vocab) == v

def test_worker_processes_tokenize_alike():
    "The tokenizer pickles with its model: worker processes give the tokens of the main process"
    tkz = spm_tokenizer(toy_texts(300), vocab_sz=60, **TRAIN)
    texts = toy_texts(80, seed=4)
    a = tokenize_corpus(texts, tok=tkz, cache=False, progress=False, n_workers=0)
    b = tokenize_corpus(texts, tok=tkz, cache=False, progress=False, n_workers=1, chunk_chars=300)
    assert [a.tokens(i) for i in range(len(a))] == [b.tokens(i) for i in range(len(b))]

def test_token_cache_is_keyed_by_the_model():
    "Two models of the same size must not share cached tokens"
    texts = toy_texts(50, seed=5)
    t1 = spm_tokenizer(toy_texts(300), vocab_sz=60, **TRAIN)
    t2 = spm_tokenizer(toy_texts(300, seed=9), vocab_sz=60, model_type='bpe', **TRAIN)
    s1, s2 = tokenize_corpus(texts, tok=t1, **FAST), tokenize_corpus(texts, tok=t2, **FAST)
    assert s1.path != s2.path
    assert s1.tokens(0) == next(t1.tok([compose(*defaults.text_proc_rules)(texts[0])]))

def test_errors(tmp_path):
    texts = toy_texts(50)
    with pytest.raises(UlmfitError, match='vocab_sz'): train_spm(texts, vocab_sz=8)
    with pytest.raises(UlmfitError, match="'unigram' .* or 'bpe'"): train_spm(texts, model_type='word')
    odd = [string.ascii_letters + string.digits + ' hello'] * 20
    with pytest.raises(UlmfitError, match='smaller `vocab_sz`'): train_spm(odd, vocab_sz=40, char_coverage=1.0, rules=[], **TRAIN)
    with pytest.raises(UlmfitError, match='raw text'): train_spm(tokenize_corpus(texts, **FAST))
    with pytest.raises(UlmfitError, match='empty or blank'): train_spm(['  '])
    with pytest.raises(UlmfitError, match='train one with `train_spm`'): SpmTokenizer(tmp_path/'none.model')
    untrained = SentencePieceTokenizer(cache_dir=tmp_path/'sp')
    with pytest.raises(UlmfitError, match='no trained model'): lm_dls(texts, tok=untrained, **FAST)

def test_classifier_bundle_predicts_with_its_model(tmp_path):
    "A classifier trained on SentencePiece data is saved with spm.model and predicts raw text from the bundle alone"
    from ulmfit_ext.learner import clas_learner
    from ulmfit_ext.bundle import save_classifier_bundle, load_bundle
    from ulmfit_ext.inference import predict_texts
    tkz = spm_tokenizer(toy_texts(300), vocab_sz=60, **TRAIN)
    df = pd.DataFrame({'text': toy_texts(40, seed=6), 'label': ['a', 'b']*20})
    dls = clas_dls(df, vocab=None, tok=tkz, bs=8, bptt=10, seed=0, **FAST)
    learn = clas_learner(dls, config=dict(emb_sz=16, n_hid=16, n_layers=2), bptt=10)
    d = save_classifier_bundle(learn, tmp_path/'clas')
    b = load_bundle(d)
    assert (d/'spm.model').is_file() and b.tokenizer_spec['tokenizer'] == 'SpmTokenizer' and b.vocab == tkz.tok.fixed_vocab
    texts = ['The cat sat on the mat.', 'A dog ran under the tree.']
    p_bundle = predict_texts(d, texts, progress=False)
    p_learn = predict_texts(learn, texts, progress=False)
    assert list(p_bundle.label) == list(p_learn.label) and np.allclose(p_bundle.filter(like='prob_').values, p_learn.filter(like='prob_').values, atol=1e-5)
