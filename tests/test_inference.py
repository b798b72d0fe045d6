"Tests of `ulmfit_ext.inference`, `ulmfit_ext.pair` and `ulmfit_ext.generate`: batch prediction, the forward+backward ensemble and stateful generation, on tiny models."
import subprocess, sys
import numpy as np, pandas as pd, pytest, torch
from fastai.text.all import BaseTokenizer, UNK
from ulmfit_ext.core import UlmfitError
from ulmfit_ext.data import lm_dls, clas_dls
from ulmfit_ext.learner import lm_learner, clas_learner
from ulmfit_ext.test_utils import toy_df, toy_dls, tiny_cfg
from ulmfit_ext.inference import as_predictor, predict_probs, predict_texts
from ulmfit_ext.pair import BiClassifier, backward_dls
from ulmfit_ext.generate import LMState, generate, generate_ids, _filter_logits

DKW = dict(tok=BaseTokenizer(), n_workers=0, progress=False, cache=False, seed=0)

@pytest.fixture(scope='module')
def toy():
    "Forward LM data, forward and backward classifiers (untrained, tiny) on one vocabulary"
    df = toy_df(100)
    dls_lm = lm_dls(df, bs=8, bptt=10, **DKW)
    dls_lm_b, dls_b = backward_dls(dls_lm, df, df, clas_kwargs=dict(valid_col='is_valid'), bs=8, bptt=10, **DKW)
    dls_f = clas_dls(df, vocab=dls_lm.vocab, valid_col='is_valid', bs=8, bptt=10, **DKW)
    torch.manual_seed(0)
    return dict(df=df, dls_lm=dls_lm, dls_lm_b=dls_lm_b, f=clas_learner(dls_f, config=tiny_cfg, bptt=10),
                b=clas_learner(dls_b, config=tiny_cfg, bptt=10), lm=lm_learner(dls_lm, config=tiny_cfg))

def _texts(n=24, seed=0):
    "Shuffled texts of very different lengths, 1 to 300 tokens"
    rng = np.random.default_rng(seed)
    words = 'good bad film the plot awful great is'.split()
    lens = rng.permutation(np.r_[1, 2, 300, 150, rng.integers(1, 300, n-4)])
    return [' '.join(rng.choice(words, size=int(k))) for k in lens]

def test_order_matches_single_predictions(toy):
    texts = _texts()
    batched = predict_probs(toy['f'], texts, bs=5, chunk_size=7, progress=False)
    single = np.concatenate([predict_probs(toy['f'], [t], progress=False) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert batched.std(0).max() > 1e-4   # the texts really get different predictions

def test_chunks_bound_tokenization(toy):
    "The input is tokenized `chunk_size` texts at a time, each text once"
    p, seen = as_predictor(toy['f']), []
    orig = p.tokenize
    p.tokenize = lambda texts: (seen.append(len(texts)), orig(texts))[1]
    out = predict_probs(p, _texts(), chunk_size=7, bs=3, progress=False)
    assert seen == [7, 7, 7, 3] and out.shape == (24, 2) and out.dtype == np.float32

def test_predict_texts_frame(toy):
    s = pd.Series(_texts(6), index=[9, 8, 7, 'a', 'b', 'c'])
    res = predict_texts(toy['f'], s, progress=False)
    assert list(res.index) == list(s.index) and list(res.columns) == ['label', 'prob_neg', 'prob_pos']
    probs = res[['prob_neg', 'prob_pos']].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert (res.label == np.where(probs[:, 1] > probs[:, 0], 'pos', 'neg')).all()
    frame = predict_texts(toy['f'], pd.DataFrame({'review': s}), text_col='review', progress=False)
    pd.testing.assert_frame_equal(frame, res)

def test_backward_learner_reverses(toy):
    p = as_predictor(toy['b'])
    assert p.backwards and not as_predictor(toy['f']).backwards
    assert p.vocab == as_predictor(toy['f']).vocab

def test_ensemble_is_mean(toy):
    texts = _texts()
    ens = BiClassifier(toy['f'], toy['b'])
    pf, pb = predict_probs(toy['f'], texts, progress=False), predict_probs(toy['b'], texts, progress=False)
    np.testing.assert_allclose(predict_probs(ens, texts, bs=3, progress=False), (pf + pb) / 2, atol=1e-6)
    assert not np.allclose(pf, pb, atol=1e-3)

def test_ensemble_round_trip_fresh_process(toy, tmp_path):
    texts = _texts()
    ens = BiClassifier(toy['f'], toy['b'])
    want = predict_probs(ens, texts, progress=False)
    ens.save(tmp_path/'ens')
    code = ("import sys, json, numpy as np, torch; torch.set_num_threads(1)\n"
            "from ulmfit_ext.inference import predict_probs\nfrom ulmfit_ext.pair import BiClassifier\n"
            "texts = json.load(open(sys.argv[1]))\n"
            "np.save(sys.argv[2], predict_probs(BiClassifier.load(sys.argv[3]), texts, progress=False))")
    (tmp_path/'texts.json').write_text(pd.Series(texts).to_json(orient='values'))
    subprocess.run([sys.executable, '-c', code, str(tmp_path/'texts.json'), str(tmp_path/'p.npy'), str(tmp_path/'ens')], check=True, capture_output=True)
    np.testing.assert_allclose(np.load(tmp_path/'p.npy'), want, atol=1e-6)
    np.testing.assert_allclose(predict_probs(tmp_path/'ens', texts, progress=False), want, atol=1e-6)

def test_ensemble_save_refuses_overwrite(toy, tmp_path):
    ens = BiClassifier(toy['f'], toy['b'])
    ens.save(tmp_path/'ens')
    with pytest.raises(UlmfitError, match='overwrite=True'): ens.save(tmp_path/'ens')
    ens.save(tmp_path/'ens', overwrite=True)
    assert sorted(p.name for p in (tmp_path/'ens').iterdir()) == ['bwd', 'ensemble.json', 'fwd']
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]   # no temporary folders left behind
    (tmp_path/'other').mkdir(); (tmp_path/'other'/'x.txt').write_text('x')
    with pytest.raises(UlmfitError, match='not a ulmfit_ext ensemble folder'): ens.save(tmp_path/'other', overwrite=True)

def test_ensemble_refusals(toy):
    df = toy['df']
    with pytest.raises(UlmfitError, match='Both classifiers read text forwards'): BiClassifier(toy['f'], toy['f'])
    with pytest.raises(UlmfitError, match='Both classifiers read text backwards'): BiClassifier(toy['b'], toy['b'])
    own = clas_dls(df, vocab=None, min_freq=1, valid_col='is_valid', bs=8, bptt=10, backwards=True, **DKW)
    with pytest.raises(UlmfitError, match=r'different vocabularies .*first difference at index .*backward_dls'):
        BiClassifier(toy['f'], clas_learner(own, config=tiny_cfg, bptt=10))
    df3 = df.assign(label=df.label.map(dict(pos='yes', neg='no')))
    other = clas_dls(df3, vocab=toy['dls_lm'].vocab, valid_col='is_valid', bs=8, bptt=10, backwards=True, **DKW)
    with pytest.raises(UlmfitError, match=r"different label sets: \['neg', 'pos'\] \(forward\) vs \['no', 'yes'\]"):
        BiClassifier(toy['f'], clas_learner(other, config=tiny_cfg, bptt=10))
    assert not BiClassifier(toy['b'], toy['f']).fwd.backwards   # the pair may come in either order
    from fastai.text.all import Tokenizer
    pb = as_predictor(toy['b']); pb.tokenizer = Tokenizer(BaseTokenizer(), rules=[])
    with pytest.raises(UlmfitError, match='different tokenizers'): BiClassifier(toy['f'], pb)

def test_input_errors(toy):
    f = toy['f']
    with pytest.raises(UlmfitError, match='no texts'): predict_texts(f, [])
    with pytest.raises(UlmfitError, match='no texts'): predict_texts(f, pd.Series([], dtype=object))
    with pytest.raises(UlmfitError, match=r"position 2 is a int \(7\), not a string.*astype\(str\)"): predict_texts(f, ['a', 'b', 7])
    with pytest.raises(UlmfitError, match=r"2 text\(s\) are missing \(NaN/None\), at index \['q', 's'\].*fillna\(''\).*dropna"):
        predict_texts(f, pd.Series(['a', np.nan, 'b', None], index=list('pqrs')))
    with pytest.raises(UlmfitError, match='not a single string'): predict_texts(f, 'a text')
    with pytest.raises(UlmfitError, match="Column 'txt' is not in the DataFrame"): predict_texts(f, pd.DataFrame({'text': ['a']}), text_col='txt')

def test_max_tokens_head_and_tail(toy):
    long = _texts()[2]  # 300 tokens
    full = predict_probs(toy['f'], [long], progress=False)
    toks = as_predictor(toy['f']).tokenize([long])[0]
    head = predict_probs(toy['f'], [' '.join(toks[1:20])], progress=False)   # toks[0] is xxbos, added again by the rules
    np.testing.assert_allclose(predict_probs(toy['f'], [long], max_tokens=20, progress=False), head, atol=1e-5)
    assert not np.allclose(predict_probs(toy['f'], [long], max_tokens=20, keep_end='tail', progress=False), full, atol=1e-6)

def test_fastai_textblock_learner_and_bundle(tmp_path):
    "A learner on fastai's own TextBlock DataLoaders works too, and predicts the same from its saved bundle"
    from ulmfit_ext.bundle import save_classifier_bundle
    dls = toy_dls(toy_df(60))
    learn = clas_learner(dls, config=tiny_cfg, bptt=10)
    texts = _texts(10)
    want = predict_probs(learn, texts, bs=3, progress=False)
    fastai = learn.get_preds(dl=dls.test_dl(texts))[0].numpy()
    np.testing.assert_allclose(want, fastai, atol=1e-5)
    save_classifier_bundle(learn, tmp_path/'b')
    np.testing.assert_allclose(predict_probs(tmp_path/'b', texts, progress=False), want, atol=1e-6)

def test_cached_state_matches_rereading(toy):
    model = toy['lm'].model.eval()
    p = as_predictor(toy['lm'])
    prefix = p.numericalize(p.tokenize(['the film was very'])[0])
    with torch.inference_mode():
        st = LMState(model)
        logits = st.feed(prefix)
        for tok in [7, 3, 11, 20, 5]:
            model.reset()
            full = model(prefix[None])[0][0, -1]
            assert torch.allclose(logits[0].softmax(-1), full.softmax(-1), atol=1e-6)
            logits, prefix = st.feed(torch.tensor([tok])), torch.cat([prefix, torch.tensor([tok])])
    model.reset()

def test_generated_tokens_follow_cached_distribution(toy):
    "The tokens `generate_ids` picks greedily are the argmax of the full re-read distribution at every step"
    model = toy['lm'].model
    p = as_predictor(toy['lm'])
    ids = p.numericalize(p.tokenize(['a good'])[0])
    new, _ = generate_ids(model, ids, n_words=8, temperature=0)
    with torch.inference_mode():
        for k in range(len(new)):
            model.reset()
            assert model(torch.cat([ids, torch.tensor(new[:k], dtype=torch.long)])[None])[0][0, -1].argmax().item() == new[k]
    model.reset()

def test_top_k_and_top_p():
    lg = torch.tensor([[0., 1., 2., 3., 4.]]).log()
    assert torch.isfinite(_filter_logits(lg, top_k=3))[0].tolist() == [False, False, True, True, True]
    assert torch.isfinite(_filter_logits(lg, top_p=0.65))[0].tolist() == [False, False, False, True, True]   # .4+.3 reach .65
    assert torch.isfinite(_filter_logits(lg, top_p=0.75))[0].tolist() == [False, False, True, True, True]

def test_top_k_sampling_restricted(toy):
    model, p = toy['lm'].model, as_predictor(toy['lm'])
    ids = p.numericalize(p.tokenize(['the film'])[0])
    with torch.inference_mode(): top = set(LMState(model.eval()).feed(ids)[0].topk(4).indices.tolist())
    drawn = {generate_ids(model, ids, n_words=1, top_k=4, temperature=3., seed=s)[0][0] for s in range(50)}
    assert drawn <= top and len(drawn) > 1

def test_beam_search_beats_greedy(toy):
    model, p = toy['lm'].model, as_predictor(toy['lm'])
    ids = p.numericalize(p.tokenize(['the plot'])[0])
    _, g = generate_ids(model, ids, n_words=6, temperature=0)
    b_ids, b = generate_ids(model, ids, n_words=6, beam_size=4)
    assert len(generate_ids(model, ids, n_words=9, seed=0)[0]) == 9
    assert len(b_ids) == 6 and b >= g - 1e-5
    # the reported score is the sequence's real log-probability (re-read from scratch)
    with torch.inference_mode():
        model.eval().reset()
        lp = model(torch.cat([ids, torch.tensor(b_ids)])[None])[0][0].log_softmax(-1)
    banned_free = lp[len(ids)-1:-1].gather(1, torch.tensor(b_ids)[:, None]).sum().item()
    assert banned_free == pytest.approx(b, abs=1e-4)
    model.reset()

def test_generate_text(toy):
    lm = toy['lm']
    a = generate(lm, 'The film', n_words=12, seed=3)
    assert a == generate(lm, 'The film', n_words=12, seed=3) and a.startswith('The film') and 'xxfake' not in a and 'xxbos' not in a
    assert UNK not in generate(lm, 'The film', n_words=40, temperature=3., seed=0)
    back = lm_learner(toy['dls_lm_b'], config=tiny_cfg)
    assert generate(back, 'was great', n_words=4, seed=0).endswith('was great')
    with pytest.raises(UlmfitError, match='is a classifier'): generate(toy['f'], 'the')
    with pytest.raises(UlmfitError, match='is a language model'): predict_texts(lm, ['the'])
    with pytest.raises(UlmfitError, match='`top_k`=0 is out of range'): generate(lm, 'the', top_k=0)

# ---------------------------------------------------------------- issue 13: threads, long texts, trust
import json, os, threading
from pathlib import Path
from ulmfit_ext.pair import ensemble_digest
from ulmfit_ext.bundle import bundle_digest, save_classifier_bundle, load_bundle

def _threaded(fn, n_threads=4, n_calls=3):
    "Run `fn(i)` `n_calls` times in each of `n_threads` threads at once; {(i, call): result or exception}"
    out, gate = {}, threading.Barrier(n_threads)
    def work(i):
        gate.wait()
        for r in range(n_calls):
            try: out[i, r] = fn(i)
            except Exception as e: out[i, r] = e
    ts = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in ts: t.start()
    for t in ts: t.join(120)
    return out

def test_shared_predictor_is_thread_safe(toy):
    "Item 2: 4 threads x 3 calls on one predictor give exactly the sequential results (before: shape errors and flipped labels)"
    p = as_predictor(toy['f'])
    sets = [_texts(40, seed=s) for s in range(4)]
    alone = [predict_probs(p, s, bs=7, progress=False) for s in sets]
    got = _threaded(lambda i: predict_probs(p, sets[i], bs=7, progress=False))
    assert len(got) == 12 and not [v for v in got.values() if isinstance(v, Exception)]
    assert all(np.array_equal(v, alone[i]) for (i, _), v in got.items())

def test_shared_learner_and_ensemble_are_thread_safe(toy):
    "Predictors built per call over one learner's model share its lock; so do the two members of an ensemble"
    ens = BiClassifier(toy['f'], toy['b'])
    sets = [_texts(30, seed=10+s) for s in range(4)]
    alone = [(predict_probs(toy['f'], s, bs=5, progress=False), predict_probs(ens, s, bs=5, progress=False)) for s in sets]
    got = _threaded(lambda i: (predict_probs(toy['f'], sets[i], bs=5, progress=False), predict_probs(ens, sets[i], bs=5, progress=False)))
    assert all(not isinstance(v, Exception) and np.array_equal(v[0], alone[i][0]) and np.array_equal(v[1], alone[i][1]) for (i, _), v in got.items())

def test_concurrent_generation(toy):
    "Generation keeps the LSTM state on the model between tokens: one at a time per model, the same text as alone"
    alone = [generate(toy['lm'], 'the film', n_words=8, seed=s) for s in range(4)]
    got = _threaded(lambda i: generate(toy['lm'], 'the film', n_words=8, seed=i), n_calls=2)
    assert all(v == alone[i] for (i, _), v in got.items())

def test_text_over_a_million_characters():
    "Item 10: spaCy refuses texts over 1,000,000 characters (E088); prediction cuts them as training does, with the same tokens"
    from ulmfit_ext.tokens import tokenize_corpus
    df = toy_df(60)
    kw = dict(n_workers=0, progress=False, cache=False, seed=0)   # the default spaCy tokenizer
    lm = lm_dls(df, bs=8, bptt=10, **kw)
    clas = clas_learner(clas_dls(df, vocab=lm.vocab, valid_col='is_valid', bs=8, bptt=10, **kw), config=tiny_cfg, bptt=10)
    rng = np.random.default_rng(0)
    long = ' '.join(rng.choice('good bad film the plot awful great is a movie'.split(), size=220_000))
    assert len(long) > 1_000_000
    res = predict_texts(clas, [long, 'a good film'], max_tokens=2000, progress=False)
    assert len(res) == 2 and np.isfinite(res[['prob_neg', 'prob_pos']].to_numpy()).all()
    assert as_predictor(clas).tokenize([long])[0] == tokenize_corpus([long], **{k: v for k, v in kw.items() if k != 'seed'}).tokens(0)

@pytest.fixture
def ens_dir(toy, tmp_path):
    return BiClassifier(toy['f'], toy['b']).save(tmp_path/'ens')

@pytest.mark.parametrize('member', ['../outside', '/etc', 'fwd/../..', '..\\\\outside', 'C:\\\\models\\\\fwd', '', '.', 7])
def test_ensemble_members_stay_inside(ens_dir, member):
    "Item 11: member names that lead out of the ensemble folder (or nowhere) are refused before anything is read"
    meta = json.loads((ens_dir/'ensemble.json').read_text())
    (ens_dir/'ensemble.json').write_text(json.dumps(dict(meta, members=dict(fwd=member, bwd='bwd'))))
    with pytest.raises(UlmfitError, match="is not a sub-folder of|names no fwd member"): BiClassifier.load(ens_dir)
    with pytest.raises(UlmfitError, match="is not a sub-folder of|names no fwd member"): predict_texts(ens_dir, ['good'], progress=False)

def test_ensemble_member_symlink_leading_out(ens_dir, tmp_path):
    (tmp_path/'elsewhere').mkdir()
    os.rename(ens_dir/'fwd', tmp_path/'elsewhere'/'fwd')
    os.symlink(tmp_path/'elsewhere'/'fwd', ens_dir/'fwd')
    with pytest.raises(UlmfitError, match="no links leading out"): BiClassifier.load(ens_dir)

def test_ensemble_pinned_digest(ens_dir, toy):
    d = ensemble_digest(ens_dir)
    texts = _texts(5)
    ref = predict_probs(ens_dir, texts, progress=False)
    assert np.array_equal(predict_probs(ens_dir, texts, sha256=d, progress=False), ref)
    meta = json.loads((ens_dir/'ensemble.json').read_text())
    (ens_dir/'ensemble.json').write_text(json.dumps(dict(meta, combine='max')))   # an edit ensemble.json's own checks do not see
    with pytest.raises(UlmfitError, match='is not the one expected'): BiClassifier.load(ens_dir, sha256=d)

def test_bundle_pinned_digest_through_predict(toy, tmp_path):
    b = save_classifier_bundle(toy['f'], tmp_path/'clas')
    assert (predict_texts(b, ['good'], sha256=bundle_digest(b), progress=False).shape == (1, 3))
    with pytest.raises(UlmfitError, match='is not the one expected'): predict_texts(b, ['good'], sha256='0'*64, progress=False)

def test_ensemble_save_two_writers(toy, tmp_path, monkeypatch):
    "Two saves of an ensemble to one new folder at once: one wins, the other is refused, the folder loads"
    import ulmfit_ext.pair as inf
    gate, orig = threading.Barrier(2, timeout=30), inf._ensemble_meta
    monkeypatch.setattr(inf, '_ensemble_meta', lambda ens: (gate.wait(), orig(ens))[1])
    ens = BiClassifier(toy['f'], toy['b'])
    got = {}
    def save(i):
        try: got[i] = ens.save(tmp_path/'e')
        except UlmfitError as e: got[i] = e
    ts = [threading.Thread(target=save, args=(i,)) for i in range(2)]
    for t in ts: t.start()
    for t in ts: t.join(60)
    assert sorted(type(v).__name__ for v in got.values()) == sorted(['PosixPath', 'UlmfitError'])
    assert BiClassifier.load(tmp_path/'e').labels == ens.labels and [p.name for p in tmp_path.iterdir()] == ['e']

def test_pair_hint_names_the_missing_direction(toy):
    "Item 16: two forward classifiers: the fix says `backwards=True`, the direction that is missing"
    with pytest.raises(UlmfitError, match=r"on backward data: `clas_dls\(\.\.\., backwards=True"): BiClassifier(toy['f'], toy['f'])
    with pytest.raises(UlmfitError, match=r"on forward data: `clas_dls\(\.\.\., backwards=False"): BiClassifier(toy['b'], toy['b'])

# ---------------------------------------------------------------- issue 15: speed paths that must not change results
from ulmfit_ext.inference import (inference_model, Predictor, _clas_logits, _pad_batch, _eval_mode)
from ulmfit_ext.tokens import _SpacyRules
from ulmfit_ext.generate import _Steps, _StateSteps
from fastai.text.all import TokenizeWithRules, SpacyTokenizer, WeightDropout

def test_fast_spacy_rules_give_fastai_tokens(shared_dataset):
    "`_SpacyRules` (no per-token L / spaCy Token objects) gives exactly fastai's TokenizeWithRules tokens on real reviews"
    texts = pd.read_csv(shared_dataset('imdb_sample')/'texts.csv').text.tolist()[:300]
    texts += ['', 'ALL CAPS!!!!  <br /><br />', "xxbos xxmaj Don't", '   leading and trailing   ', 'ünïcödé — “quotes”']
    tok = SpacyTokenizer()
    assert [list(t) for t in _SpacyRules(tok)(texts)] == [list(t) for t in TokenizeWithRules(tok)(texts)]

@pytest.mark.parametrize('bptt,max_len,step', [(10, 20, None), (10, None, 3), (5, 100, 50), (7, 7, 7)])
def test_clas_logits_match_fastai_forward(toy, bptt, max_len, step):
    "Reading each text only as far as the batch's longest unread text gives fastai's `SentenceEncoder` logits"
    dls = clas_dls(toy['df'], vocab=toy['dls_lm'].vocab, valid_col='is_valid', bs=8, bptt=bptt, **DKW)
    torch.manual_seed(2)
    m = clas_learner(dls, config=tiny_cfg, bptt=bptt, max_len=max_len or 1000).model.eval()
    if max_len is None: m[0].max_len = None
    g = torch.Generator().manual_seed(0)
    ids = sorted([torch.randint(2, len(dls.vocab[0]), (int(k),), generator=g) for k in [1, 2, bptt, bptt + 1, 3*bptt, 57, 140, 9]], key=len, reverse=True)
    with torch.inference_mode():
        want = m(_pad_batch(ids, 1, bptt))[0]; m.reset()
        got = _clas_logits(m, ids, step)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)

@pytest.fixture(scope='module')
def trained():
    "A small classifier (32/64/2) trained for a few epochs on the toy reviews, so its probabilities spread out"
    df = toy_df(200)
    dls = clas_dls(df, vocab=lm_dls(df, bs=16, bptt=10, **DKW).vocab, valid_col='is_valid', bs=16, bptt=10, **DKW)
    torch.manual_seed(0)
    learn = clas_learner(dls, config=dict(emb_sz=32, n_hid=64, n_layers=2), bptt=10, drop_mult=1.)   # the paper's dropouts, not the size-scaled default
    with learn.no_bar(), learn.no_logging(): learn.fit(4, 1e-2)
    return learn

INT8_TOL = 0.03   # stated tolerance: max |p_int8 - p_fp32| per class on this small trained model

def test_int8_agrees_with_fp32_and_keeps_order(trained):
    texts = _texts(40, seed=5)
    fp32 = np.concatenate([predict_probs(trained, [t], progress=False) for t in texts])   # one text at a time: no batching effects
    assert fp32[:, 0].std() > 0.1, 'the trained model should be confident on some texts'
    q = predict_probs(trained, texts, bs=6, chunk_size=11, int8=True, progress=False)
    diff = np.abs(q - fp32).max()
    assert diff < INT8_TOL, diff
    assert (q.argmax(1) == fp32.argmax(1)).mean() >= 0.95
    assert np.abs(q - fp32[::-1]).max() > 5 * max(diff, 1e-3)   # rows in another order would be far outside the tolerance
    res = predict_texts(trained, pd.Series(texts, index=range(100, 140)), int8=True, bs=6, chunk_size=11, progress=False)
    assert list(res.index) == list(range(100, 140)) and np.allclose(res[['prob_neg', 'prob_pos']].to_numpy(), q, atol=1e-6)

def test_materialised_lstms_are_exact_and_the_learner_untouched(trained):
    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    plain = inference_model(trained.model)
    assert not any(isinstance(m, WeightDropout) for m in plain.modules())
    x = _pad_batch([torch.tensor([2, 5, 7, 9, 11] * 5), torch.tensor([3, 4])], 1, 10)
    with torch.inference_mode():
        trained.model.eval(); trained.model.reset()
        torch.testing.assert_close(plain(x)[0], trained.model(x)[0], atol=1e-6, rtol=0)
    after = trained.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    q = as_predictor(trained).quantized()
    assert q.int8 and q.quantized() is q and 'int8' in repr(q) and q.n_out == 2
    assert any(isinstance(m, WeightDropout) for m in trained.model.modules())

def test_int8_ensemble_and_no_saving(toy, tmp_path):
    ens = BiClassifier(toy['f'], toy['b'])
    texts = _texts(12)
    qe = ens.quantized()
    assert qe.fwd.int8 and qe.bwd.int8 and qe.bwd.backwards
    np.testing.assert_allclose(predict_probs(qe, texts, progress=False), predict_probs(ens, texts, progress=False), atol=0.02)
    with pytest.raises(UlmfitError, match='int8 copies, which are for inference only'): qe.save(tmp_path/'e')
    ens.save(tmp_path/'e')
    np.testing.assert_allclose(predict_probs(tmp_path/'e', texts, int8=True, progress=False), predict_probs(qe, texts, progress=False), atol=1e-6)

@pytest.mark.parametrize('n_workers', [1, 2])
def test_tokenizer_workers_keep_order(toy, n_workers):
    "Worker processes tokenize in pieces ahead of the model: the same probabilities in the same order as in-process tokenization"
    texts = _texts(700, seed=n_workers)
    want = predict_probs(toy['f'], texts, bs=16, progress=False)
    got = predict_probs(toy['f'], texts, bs=16, chunk_size=300, n_workers=n_workers, progress=False)
    np.testing.assert_allclose(got, want, atol=1e-6)

def test_tokenizer_workers_refuse_what_cannot_be_pickled(toy):
    p = as_predictor(toy['f'])
    bad = Predictor(p.model, p.vocab, p.labels, p.tokenizer, post_rules=[lambda t: t], backwards=p.backwards, source='test')
    with pytest.raises(UlmfitError, match='cannot be sent to worker processes.*n_workers=0'): predict_probs(bad, _texts(600), n_workers=1, progress=False)
    with pytest.raises(UlmfitError, match='`n_workers`=-1'): predict_probs(p, ['a'], n_workers=-1)

def _reference_generate_ids(model, ids, n_words, temperature=1., top_k=None, top_p=None, banned=(), seed=None, beam_size=None):
    "Generation as it was before issue 15 (the cached-state path): `LMState.feed` per token, `.item()` per step; the reference"
    with _eval_mode(model):
        st = LMState(model)
        logits = st.feed(ids)
        if beam_size:
            scores, seqs = logits.new_zeros(1), torch.zeros(1, 0, dtype=torch.long)
            for i in range(n_words):
                lp = _filter_logits(logits, banned=banned).log_softmax(-1)
                top = (scores[:, None] + lp).flatten().topk(min(beam_size, lp.numel()))
                rows, toks = top.indices // lp.shape[1], top.indices % lp.shape[1]
                seqs, scores = torch.cat([seqs[rows], toks[:, None]], 1), top.values
                if i < n_words-1: st.reorder(rows); logits = st.feed(toks[:, None])
            best = scores.argmax()
            return seqs[best].tolist(), scores[best].item()
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        out, score = [], 0.
        for i in range(n_words):
            if temperature == 0: nxt = _filter_logits(logits, banned=banned).argmax(-1)
            else: nxt = torch.multinomial(_filter_logits(logits, temperature, top_k, top_p, banned).softmax(-1), 1, generator=gen)[:, 0]
            score += _filter_logits(logits, banned=banned).log_softmax(-1)[0, nxt].item()
            out.append(nxt.item())
            if i < n_words-1: logits = st.feed(nxt[:, None])
        return out, score

@pytest.fixture(scope='module')
def lm32(toy):
    "A slightly larger LM (32/64/2) than the toy one, so the distributions are not flat"
    torch.manual_seed(4)
    return lm_learner(toy['dls_lm'], config=dict(emb_sz=32, n_hid=64, n_layers=2))

@pytest.mark.parametrize('kw', [dict(), dict(temperature=0.6), dict(temperature=2.), dict(top_k=5), dict(top_p=0.8), dict(temperature=0),
                                dict(beam_size=3), dict(top_k=3, top_p=0.5, temperature=1.5)], ids=str)
def test_generation_unchanged_for_a_fixed_seed(toy, lm32, kw):
    "The arithmetic path (`_Steps`) picks the same tokens for the same seed as the cached-state path did, with the same scores"
    for lm in (toy['lm'], lm32):
        p = as_predictor(lm)
        ids = p.numericalize(p.tokenize(['the film was good and the plot'])[0])
        banned = [p.unk, 1]
        for seed in range(4):
            new, s_new = generate_ids(lm.model, ids, n_words=30, banned=banned, seed=seed, **kw)
            old, s_old = _reference_generate_ids(lm.model, ids, 30, banned=banned, seed=seed, **kw)
            assert new == old, (kw, seed)
            assert s_new == pytest.approx(s_old, abs=1e-4)

def test_steps_only_for_models_they_can_read(toy, lm32):
    assert _Steps.of(lm32.model) is not None and _Steps.of(toy['f'].model) is None
    q = inference_model(lm32.model, int8=True)    # int8 LSTMs: run through LMState instead
    assert _Steps.of(q) is None
    p = as_predictor(lm32)
    ids = p.numericalize(p.tokenize(['a good'])[0])
    assert len(generate_ids(q, ids, n_words=5, seed=0)[0]) == 5

def test_cli_predict_int8_and_workers(trained, tmp_path):
    from ulmfit_ext.cli import main
    save_classifier_bundle(trained, tmp_path/'clas')
    texts = _texts(30, seed=9)
    pd.DataFrame({'text': texts}).to_csv(tmp_path/'in.csv', index=False)
    main(['predict', str(tmp_path/'clas'), str(tmp_path/'in.csv'), '--out', str(tmp_path/'fp32.csv')])
    main(['predict', str(tmp_path/'clas'), str(tmp_path/'in.csv'), '--out', str(tmp_path/'int8.csv'), '--int8', '--n-workers', '1'])
    a, b = pd.read_csv(tmp_path/'fp32.csv'), pd.read_csv(tmp_path/'int8.csv')
    assert a.text.tolist() == b.text.tolist() == texts
    assert np.abs(a[['prob_neg', 'prob_pos']].to_numpy() - b[['prob_neg', 'prob_pos']].to_numpy()).max() < INT8_TOL

@pytest.mark.parametrize('task', ['multi_label', 'regression'])
def test_cli_predict_int8_other_tasks(task, tmp_path):
    "`ulmfit predict --int8 --n-workers` on a multi-label classifier and a regression: their own columns (label sets, numbers), close to fp32"
    from ulmfit_ext.cli import main
    df = toy_df(120)
    df = df.assign(good=(df.label == 'pos').astype(int), long=(df.text.str.split().str.len() > 20).astype(int), stars=np.arange(len(df)) % 5 + 1.)
    kw = dict(label_col=['good', 'long']) if task == 'multi_label' else dict(label_col='stars', regression=True)
    dls = clas_dls(df, vocab=lm_dls(df, bs=8, bptt=10, **DKW).vocab, valid_col='is_valid', bs=8, bptt=10, **kw, **DKW)
    torch.manual_seed(0)
    learn = clas_learner(dls, config=dict(emb_sz=32, n_hid=64, n_layers=2), bptt=10, drop_mult=1.)
    assert learn.task['type'] == task
    save_classifier_bundle(learn, tmp_path/'clas')
    texts = _texts(30, seed=3)
    pd.DataFrame({'text': texts}).to_csv(tmp_path/'in.csv', index=False)
    main(['predict', str(tmp_path/'clas'), str(tmp_path/'in.csv'), '--out', str(tmp_path/'fp32.csv')])
    main(['predict', str(tmp_path/'clas'), str(tmp_path/'in.csv'), '--out', str(tmp_path/'int8.csv'), '--int8', '--n-workers', '1'])
    a, b = pd.read_csv(tmp_path/'fp32.csv', keep_default_na=False), pd.read_csv(tmp_path/'int8.csv', keep_default_na=False)
    assert a.text.tolist() == b.text.tolist() == texts and list(a.columns) == list(b.columns)
    want = predict_probs(tmp_path/'clas', texts, progress=False)
    if task == 'regression':
        assert list(b.columns) == ['text', 'prediction']
        np.testing.assert_allclose(a.prediction.to_numpy(), want[:, 0], atol=1e-5)
        lo, hi = learn.task['y_range']
        assert (b.prediction.between(lo, hi)).all() and np.abs(a.prediction - b.prediction).max() < INT8_TOL * (hi - lo)
    else:
        cols = ['prob_good', 'prob_long']
        assert list(b.columns) == ['text', 'labels', *cols]
        pa, pb = a[cols].to_numpy(), b[cols].to_numpy()
        np.testing.assert_allclose(pa, want, atol=1e-5)
        assert not np.allclose(pa.sum(1), 1) and np.abs(pa - pb).max() < INT8_TOL   # independent sigmoids, int8 close to fp32
        th = learn.task.get('threshold', 0.5)
        assert b['labels'].tolist() == [';'.join(l for l, v in zip(['good', 'long'], r) if v >= th) for r in pb]
