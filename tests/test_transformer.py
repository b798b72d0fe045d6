"""The transformer backbone (`ulmfit_ext.transformer`): a tiny randomly initialised BERT-style model built from a config (no
download) checked for its layer groups, the paper's 2.6 ratios and STLR during a real fit, gradual unfreezing one block at a
time (LayerNorms included), a bundle round trip with identical predictions, the pipeline, the CLI and the service."""
import importlib.util, json, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
if importlib.util.find_spec('transformers') is None: pytest.skip('needs transformers (the `transformers` extra)', allow_module_level=True)   # not imported here: `_hf` imports it
from ulmfit_ext.core import UlmfitError
from ulmfit_ext.learner import clas_learner, train_classifier
from ulmfit_ext.test_utils import toy_df
from ulmfit_ext.splitters import check_groups, layer_groups
from ulmfit_ext.bundle import load_bundle, bundle_digest, verify_bundle
from ulmfit_ext.inference import predict_texts, predict_probs, as_predictor
from ulmfit_ext.transformer import (_hf, backbone_path, load_backbone, encode_texts, hf_clas_dls, TransformerClassifier, transformer_splitter,
                                    transformer_learner, save_transformer_bundle, TransformerPredictor, _truncate)

def _tiny_backbone(folder, texts, n_layers=2, masked_lm=False):
    "A randomly initialised BERT-style model (width 16; with its masked-LM head if `masked_lm`) and a WordPiece tokenizer over the words of `texts`, saved in `folder`"
    hf = _hf(); folder.mkdir(parents=True, exist_ok=True)
    words = sorted({w for t in texts for w in t.split()})
    vocab = {w: i for i, w in enumerate(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + words)}
    try: tok = hf.BertTokenizerFast(vocab=vocab)                     # transformers 5
    except TypeError:                                                 # transformers 4
        (folder/'vocab.txt').write_text('\n'.join(vocab) + '\n'); tok = hf.BertTokenizerFast(vocab_file=str(folder/'vocab.txt'))
    tok.save_pretrained(str(folder))
    torch.manual_seed(0)
    cfg = hf.BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=n_layers, num_attention_heads=2, intermediate_size=32, max_position_embeddings=128)
    (hf.BertForMaskedLM if masked_lm else hf.BertModel)(cfg).save_pretrained(str(folder))
    return folder

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp('tfm')
    df = toy_df(200)
    return dict(dir=d, df=df, backbone=_tiny_backbone(d/'tiny', df.text, n_layers=3))

def _dls(tiny, **kw): return hf_clas_dls(tiny['df'], backbone=tiny['backbone'], valid_col='is_valid', bs=16, max_len=64, **kw)

def _quiet_fit(learn, f):
    with learn.no_bar(), learn.no_logging(): return f()

# ---------------------------------------------------------------- text and groups

def test_encode_keeps_special_tokens_and_truncates(tiny):
    tok = load_backbone(tiny['backbone'])[0]
    long = ' '.join(['good'] * 40 + ['awful'])
    for how, last in (('head', 'good'), ('tail', 'awful'), ('head+tail', 'awful')):
        ids = encode_texts(tok, ['good film', long], max_len=10, truncate=how)
        assert tok.convert_ids_to_tokens(ids[0]) == ['[CLS]', 'good', 'film', '[SEP]']
        assert len(ids[1]) == 10 and tok.convert_ids_to_tokens(ids[1])[-2] == last
    assert _truncate(list(range(10)), 4, 'head+tail') == [0, 7, 8, 9]
    with pytest.raises(UlmfitError, match='leaves no room'): encode_texts(tok, ['a'], max_len=2)

def test_dls_pad_at_the_end_and_record_the_backbone(tiny):
    dls = _dls(tiny)
    x, y = dls.one_batch()
    tok = dls.hf_tokenizer
    assert (x[:, 0] == tok.cls_token_id).all()
    lens = (x != tok.pad_token_id).sum(1)
    for row, n in zip(x, lens): assert (row[n:] == tok.pad_token_id).all() and row[n-1] == tok.sep_token_id
    assert dls.backbone == tiny['backbone'] and dls.task['type'] == 'single_label' and list(dls.vocab[1]) == ['neg', 'pos']

def test_layer_groups_embeddings_blocks_head(tiny):
    learn = transformer_learner(_dls(tiny))
    groups = check_groups(learn.model, transformer_splitter(learn.model))
    assert len(groups) == 1 + 3 + 1
    names = layer_groups(learn.model, transformer_splitter).modules.tolist()
    assert names[0].startswith('body.embeddings') and all(f'body.encoder.layer.{i}' in names[i+1] for i in range(3)) and 'head' in names[-1]
    assert learn.model.body.pooler is None
    with pytest.raises(UlmfitError, match='expects a TransformerClassifier'): transformer_splitter(torch.nn.Linear(2, 2))

def test_ratios_stlr_and_gradual_unfreezing_in_a_real_fit(tiny):
    from ulmfit_ext.schedules import GradualUnfreezing
    from fastai.callback.core import Callback
    learn = clas_learner(_dls(tiny))   # chosen by itself for hf_clas_dls DataLoaders
    assert type(learn.model).__name__ == 'TransformerClassifier'
    seen, before = [], {}
    class Watch(Callback):
        order = GradualUnfreezing.order + 1
        def before_epoch(self):
            seen.append([all(p.requires_grad for p in g) for g in self.learn.opt.param_lists])
            before[self.epoch] = [[p.detach().clone() for p in g] for g in self.learn.opt.param_lists]
    _quiet_fit(learn, lambda: learn.fit_gradual(5, lr=1e-2, cbs=Watch()))
    lrs = np.array(learn.recorder.group_lrs)
    np.testing.assert_allclose(lrs[:, 1:] / lrs[:, :-1], 2.6, rtol=1e-6)              # the paper's ratio at every step
    top = lrs[:, -1]; peak = int(top.argmax())
    assert 0 < peak < len(top) // 4 and top[0] < top[peak] / 10 and top[-1] < top[peak] / 10   # slanted: short rise, long decay
    assert seen == [[False]*4 + [True], [False]*3 + [True]*2, [False]*2 + [True]*3, [False] + [True]*4, [True]*5]
    # in the first epoch every block below the head stayed exactly as it was, LayerNorms included (train_bn=False)
    for e in range(4):   # in epoch e the lowest 4-e groups stay exactly as they were (their LayerNorms too), the others change
        assert all(torch.equal(a, b) for g in range(4 - e) for a, b in zip(before[e][g], before[e+1][g])), e
        assert all(not torch.equal(before[e][g][0], before[e+1][g][0]) for g in range(4 - e, 5)), e

def test_train_classifier_protocol_keeps_best_epoch(tiny):
    learn = transformer_learner(_dls(tiny))
    _quiet_fit(learn, lambda: train_classifier(learn, 6))
    r = learn.fit_report
    assert r.lr_source == 'head_lr' and r.lr >= 1e-2 and len(r.history) == 6 and 1 <= r.best_epoch <= 6
    assert learn.discr_factor == 2.6

# ---------------------------------------------------------------- bundles and predictions

def test_bundle_round_trip_identical_predictions(tiny):
    learn = transformer_learner(_dls(tiny))
    _quiet_fit(learn, lambda: learn.fit_gradual(5, lr=1e-2))
    b = save_transformer_bundle(learn, tiny['dir']/'clas')
    texts = tiny['df'].text.tolist()[:50] + ['', 'good']
    pl, pb = predict_probs(learn, texts, progress=False), predict_probs(b, texts, progress=False, bs=7)
    np.testing.assert_allclose(pl, pb, atol=1e-6)
    assert pl.std(0).max() > 1e-4                          # rows differ, so a wrong order would show
    cfg = json.loads((b/'config.json').read_text())
    assert cfg['arch'] == 'transformer' and cfg['backbone']['weights_sha256'] == load_backbone(tiny['backbone'])[2]['weights_sha256']
    assert load_bundle(b, sha256=bundle_digest(b)).labels == ['neg', 'pos']
    assert isinstance(as_predictor(b), TransformerPredictor)
    assert (predict_texts(b, texts, progress=False, int8=True).label == predict_texts(b, texts, progress=False).label).mean() > 0.8
    with pytest.raises(UlmfitError, match='exists'): save_transformer_bundle(learn, b)

def test_edited_bundle_is_refused(tiny):
    "A byte appended to the weights, or a config.json without its head, is refused with the file named"
    learn = transformer_learner(_dls(tiny))
    b = save_transformer_bundle(learn, tiny['dir']/'edit')
    with open(b/'weights.pth', 'ab') as f: f.write(b'x')
    with pytest.raises(UlmfitError, match='does not match the sha256'): load_bundle(b)
    b2 = save_transformer_bundle(learn, tiny['dir']/'edit2')
    cfg = json.loads((b2/'config.json').read_text()); del cfg['head']
    from ulmfit_ext.transformer import load_transformer_bundle
    with pytest.raises(UlmfitError, match="lacks 'head'"): load_transformer_bundle(b2, cfg, verify_bundle(b2))

def test_regression_and_multi_label(tiny):
    df = tiny['df'].copy(); df['score'] = np.where(df.label == 'pos', 4.0, 1.0); df['tags'] = np.where(df.label == 'pos', 'pos;film', 'neg')
    r = transformer_learner(hf_clas_dls(df, 'text', 'score', backbone=tiny['backbone'], valid_col='is_valid', bs=16, regression=True))
    b = save_transformer_bundle(r, tiny['dir']/'reg')
    out = predict_texts(b, df.text[:5].tolist(), progress=False)
    assert list(out.columns[:1]) == ['prediction'] and out.prediction.between(0.8, 4.2).all()   # inside the automatic y_range
    m = transformer_learner(hf_clas_dls(df, 'text', 'tags', backbone=tiny['backbone'], valid_col='is_valid', bs=16, label_delim=';'))
    p = predict_probs(save_transformer_bundle(m, tiny['dir']/'ml'), df.text[:5].tolist(), progress=False)
    assert p.shape == (5, 3) and ((p > 0) & (p < 1)).all() and not np.allclose(p.sum(1), 1)

# ---------------------------------------------------------------- refusals

def test_clear_errors(tiny):
    dls = _dls(tiny)
    with pytest.raises(UlmfitError, match='are for the AWD-LSTM'): clas_learner(dls, encoder='x')
    with pytest.raises(UlmfitError, match='not known'): clas_learner(dls, arch='lstm9')
    with pytest.raises(UlmfitError, match='nothing is downloaded'): backbone_path(tiny['dir']/'missing')
    with pytest.raises(UlmfitError, match='not encoded for a transformer'):
        from ulmfit_ext.test_utils import toy_dls
        transformer_learner(toy_dls())
    with pytest.raises(UlmfitError, match='truncate'): _dls(tiny, truncate='middle')
    with pytest.raises(UlmfitError, match='fewer than `bs`'): hf_clas_dls(tiny['df'].head(30), backbone=tiny['backbone'], bs=64)

# ---------------------------------------------------------------- pipeline, CLI, service

def test_stage3_and_cli(tiny):
    from ulmfit_ext.pipeline import stage3
    with pytest.raises(UlmfitError, match='so `lm` has no use'): stage3(tiny['df'], 'lm', backbone=tiny['backbone'])
    with pytest.raises(UlmfitError, match='drop_mult'): stage3(tiny['df'], backbone=tiny['backbone'], drop_mult=0.3)
    d = tiny['dir']; tiny['df'].to_csv(d/'train.csv', index=False); tiny['df'].head(40).to_csv(d/'test.csv', index=False)
    cli = [sys.executable, '-m', 'ulmfit_ext.cli']
    run = lambda *a: subprocess.run(cli + [str(x) for x in a], capture_output=True, text=True, cwd=d, env={'OMP_NUM_THREADS': '1', 'PATH': '/usr/bin:/bin'})
    r = run('train-classifier', 'train.csv', '--backbone', tiny['backbone'], '--out', 'clas_cli', '--epochs', 5, '--valid-col', 'is_valid')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'Stage 2 skipped' in r.stdout and 'bundle sha256' in r.stdout
    m = json.loads((d/'clas_cli'/'metrics.json').read_text())
    assert m['backbone'] == str(tiny['backbone']) and len(m['fit']['history']) == 5
    r = run('evaluate', 'clas_cli', 'test.csv', '--out', 'ev')
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((d/'ev'/'metrics.json').read_text())['n'] == 40
    for args, words in ((('--lm', 'x'), '--lm and --lm-bwd have no use'), (('--drop-mult', '0.3'), '--drop-mult belongs to the AWD-LSTM')):
        r = run('train-classifier', 'train.csv', '--backbone', tiny['backbone'], '--out', 'bad', *args)
        assert r.returncode != 0 and words in r.stderr and 'Traceback' not in r.stderr and not (d/'bad').exists()

def test_serve_a_transformer_bundle(tiny):
    pytest.importorskip('fastapi'); pytest.importorskip('uvicorn')
    import http.client
    from urllib.parse import urlsplit
    from ulmfit_ext.serve import create_app, background_server
    learn = transformer_learner(_dls(tiny))
    b = save_transformer_bundle(learn, tiny['dir']/'srv')
    texts = tiny['df'].text.tolist()[:12]
    with background_server(create_app(b)) as srv:
        u = urlsplit(srv.url); c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        c.request('POST', '/predict', json.dumps({'texts': texts}), {'Content-Type': 'application/json'})
        res = json.loads(c.getresponse().read())
    want = predict_probs(b, texts, progress=False)
    got = np.array([[p['probs'][k] for k in res['classes']] for p in res['predictions']])
    np.testing.assert_allclose(got, want, atol=1e-6)

def test_embed_and_explain(tiny):
    from ulmfit_ext.embed import embed_texts
    from ulmfit_ext.explain import explain_texts
    learn = transformer_learner(_dls(tiny))
    b = save_transformer_bundle(learn, tiny['dir']/'emb')
    texts = tiny['df'].text.tolist()[:20]
    e = embed_texts(b, texts, progress=False, bs=6)
    ids = torch.tensor(encode_texts(learn.dls.hf_tokenizer, texts[:1], max_len=64))
    with torch.no_grad(): want = learn.model.eval().pool(ids).numpy()
    assert e.shape == (20, 16) and np.allclose(e[0], want[0], atol=1e-5)   # the mean-pooled vector the head reads, rows in input order
    with pytest.raises(UlmfitError, match="pass pool='mean'"): embed_texts(b, texts, pool='last')
    pytest.importorskip('captum')
    with pytest.raises(UlmfitError, match='not supported by `explain_texts`'): explain_texts(b, texts[:2])

def test_backbone_default_rate_and_factor(tiny):
    from ulmfit_ext.transformer import backbone_defaults
    learn = transformer_learner(_dls(tiny))
    assert learn.default_lr is None and learn.discr_factor == 2.6          # a local folder: the paper's protocol (the finder's rate, 2.6)
    assert backbone_defaults('minilm') == dict(max_len=256, factor=1.6, lr=1e-3)   # chosen on TREC-6 validation
    learn.default_lr, learn.discr_factor = 3e-3, 1.6                       # what a `backbones` entry sets
    _quiet_fit(learn, lambda: train_classifier(learn, 5))
    r = learn.fit_report
    assert r.lr == 3e-3 and r.lr_source == 'backbone default' and not getattr(r, 'lr_find', None)
    lrs = np.array(learn.recorder.group_lrs)
    np.testing.assert_allclose(lrs[:, 1:] / lrs[:, :-1], 1.6, rtol=1e-6)
    assert abs(lrs[:, -1].max() - 3e-3) < 1e-9
