"""Stage 2 on a transformer (`ulmfit_ext.transformer_lm`): masked-LM fine-tuning of a tiny randomly initialised BERT masked LM
built from a config (no download): the masking, the layer groups with the tied decoder, the paper's 2.6 ratios and STLR in a real
fit, the fine-tuned folder as Stage 3's backbone, the pipeline and the CLI, and the refusals (all-MiniLM-L6-v2 has no LM head)."""
import importlib.util, json, subprocess, sys
import numpy as np, pytest, torch
if importlib.util.find_spec('transformers') is None: pytest.skip('needs transformers (the `transformers` extra)', allow_module_level=True)   # not imported here: `_hf` imports it
from ulmfit_ext.core import UlmfitError
from ulmfit_ext.test_utils import toy_df
from test_transformer import _tiny_backbone
from ulmfit_ext.transformer import _hf, _blocks, hf_clas_dls, transformer_learner
from ulmfit_ext.transformer_lm import (has_lm_head, load_backbone_lm, hf_lm_dls, MaskTokens, transformer_lm_learner, transformer_lm_splitter,
                                       finetune_transformer_lm, save_backbone_lm)

def _tiny_mlm(folder, texts): return _tiny_backbone(folder, texts, masked_lm=True)

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp('tfm_lm')
    df = toy_df(200)
    return dict(dir=d, df=df, backbone=_tiny_mlm(d/'tiny', df.text))

def _learn(tiny, **kw): return transformer_lm_learner(hf_lm_dls(tiny['df'], backbone=tiny['backbone'], bs=8, max_len=32, seed=0, **kw))

def test_lm_head_detection_and_refusals(tiny):
    assert has_lm_head(tiny['backbone'])
    plain = tiny['dir']/'plain'; plain.mkdir()
    for f in tiny['backbone'].iterdir(): (plain/f.name).write_bytes(f.read_bytes())
    cfg = json.loads((plain/'config.json').read_text()); cfg['architectures'] = ['BertModel']; (plain/'config.json').write_text(json.dumps(cfg))
    assert not has_lm_head(plain)
    with pytest.raises(UlmfitError, match='has no masked-LM head'): load_backbone_lm(plain)
    with pytest.raises(UlmfitError, match='has no masked-LM head'): transformer_lm_learner(hf_lm_dls(tiny['df'], backbone=plain, bs=8, max_len=32))
    with pytest.raises(UlmfitError, match='fewer than `bs`'): hf_lm_dls(tiny['df'].head(3), backbone=tiny['backbone'], bs=8, max_len=32)
    with pytest.raises(UlmfitError, match='max_len'): hf_lm_dls(tiny['df'], backbone=tiny['backbone'], max_len=2)
    with pytest.raises(UlmfitError, match='mlm_prob'): hf_lm_dls(tiny['df'], backbone=tiny['backbone'], mlm_prob=1.5)

def test_blocks_and_masks(tiny):
    dls = hf_lm_dls(tiny['df'], backbone=tiny['backbone'], bs=8, max_len=32, seed=0)
    tok = dls.hf_tokenizer
    x, _ = dls.one_batch()
    assert x.shape == (8, 32) and (x[:, 0] == tok.cls_token_id).all()
    n_text = sum(len(tok(t, add_special_tokens=False)['input_ids']) for t in tiny['df'].text)
    real = lambda ds: sum(int((~torch.isin(b[0], torch.tensor(tok.all_special_ids))).sum()) for b in ds)
    assert real(dls.train_ds) + real(dls.valid_ds) == n_text   # every token of every text is in exactly one block
    mt = MaskTokens(tok, 0.15, seed=3)
    class _L:
        def __init__(self, training, it): self.xb, self.yb, self.training, self.iter = (x,), None, training, it
    def mask(training, it):
        l = _L(training, it); mt.learn = l; mt.before_batch(); return l.xb[0], l.yb[0]
    inp, targ = mask(False, 0)
    t = targ != -100
    assert (targ[t] == x[t]).all() and (inp[~t] == x[~t]).all() and t.any(1).all()
    assert not t[torch.isin(x, mt.special)].any()
    assert torch.equal(mask(False, 0)[1], targ) and not torch.equal(mask(False, 1)[1], targ)   # validation: fixed per batch index
    assert (inp[t] == tok.mask_token_id).float().mean() > 0.5   # 80 % of the targets masked (6 % for width-16 noise)

def test_groups_ratios_and_a_real_fit(tiny):
    learn = _learn(tiny)
    groups = transformer_lm_splitter(learn.model)
    assert len(groups) == 2 + len(_blocks(learn.model.hf.base_model))
    emb = learn.model.hf.get_input_embeddings().weight
    assert learn.model.hf.get_output_embeddings().weight is emb
    assert any(p is emb for p in groups[0]) and not any(p is emb for g in groups[1:] for p in g)
    assert sum(len(g) for g in groups) == len(list(learn.model.parameters()))
    with learn.no_bar(), learn.no_logging(): before = learn.validate()[0]
    with learn.no_bar(), learn.no_logging(): finetune_transformer_lm(learn, 4, lr=3e-3)
    with learn.no_bar(), learn.no_logging(): after = learn.validate()[0]
    assert after < before
    lrs = np.array(learn.recorder.group_lrs)
    np.testing.assert_allclose(lrs[:, :-1] / lrs[:, 1:], 1 / 2.6, rtol=1e-6)   # the paper's ratio at every step
    peak = lrs[:, -1].argmax()
    assert 0 < peak < len(lrs) - 1 and lrs[0, -1] < lrs[peak, -1] / 10   # STLR: up, then down, from peak/32
    r = learn.fit_report
    assert r.best_epoch == int(np.argmin([h['valid_loss'] for h in r.history])) + 1

def test_saved_folder_is_a_stage3_backbone(tiny):
    learn = _learn(tiny)
    with learn.no_bar(), learn.no_logging(): finetune_transformer_lm(learn, 1, lr=3e-3)
    out = save_backbone_lm(learn, tiny['dir']/'ft')
    with pytest.raises(UlmfitError, match='exists'): save_backbone_lm(learn, out)
    clas = transformer_learner(hf_clas_dls(tiny['df'], backbone=out, valid_col='is_valid', bs=16, max_len=64))
    assert torch.equal(clas.model.body.embeddings.word_embeddings.weight, learn.model.hf.base_model.embeddings.word_embeddings.weight)
    prov = json.loads((out/'provenance.json').read_text())
    assert prov['metrics']['base']['name'] == 'tiny' and 'model.safetensors' in prov['files']

def test_pipeline_and_cli(tiny):
    from ulmfit_ext.pipeline import stage2
    with pytest.raises(UlmfitError, match='has no use'): stage2(tiny['df'], 'wt103', backbone=tiny['backbone'])
    with pytest.raises(UlmfitError, match='`backwards` belongs'): stage2(tiny['df'], None, backbone=tiny['backbone'], backwards=True)
    d = tiny['dir']; tiny['df'].to_csv(d/'train.csv', index=False)
    cli = [sys.executable, '-m', 'ulmfit_ext.cli']
    run = lambda *a: subprocess.run(cli + [str(x) for x in a], capture_output=True, text=True, cwd=d, env={'OMP_NUM_THREADS': '1', 'PATH': '/usr/bin:/bin'})
    r = run('finetune-lm', 'train.csv', '--backbone', tiny['backbone'], '--out', 'lm', '--epochs', 2, '--bs', 8)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'fine-tuned backbone in' in r.stdout and (d/'lm'/'backbone'/'model.safetensors').is_file()
    m = json.loads((d/'lm'/'metrics.json').read_text())
    assert m['backbone'] == str(tiny['backbone']) and len(m['fit']['history']) == 2 and 'perplexity' in m and len(m['backbone_sha256']) == 64
    assert not (d/'lm'/'checkpoints').exists()
    r = run('train-classifier', 'train.csv', '--backbone', 'lm', '--out', 'clas', '--epochs', 4, '--valid-col', 'is_valid')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'on the masked LM fine-tuned in' in r.stdout
    assert json.loads((d/'clas'/'metrics.json').read_text())['backbone'] == 'lm'
    for args, words in ((('--backbone', 'minilm'), 'has no masked-LM head'), (('--backbone', tiny['backbone'], '--backwards'), '--backwards belongs'),
                        (('--backbone', tiny['backbone'], '--pretrained', 'wt103'), '--pretrained belongs')):
        r = run('finetune-lm', 'train.csv', '--out', 'bad', *args)
        assert r.returncode != 0 and words in r.stderr and 'Traceback' not in r.stderr and not (d/'bad').exists(), r.stderr[-1000:]
    r = run('train-classifier', 'train.csv', '--backbone', tiny['backbone'], '--out', 'clas2', '--epochs', 4, '--valid-col', 'is_valid')
    assert r.returncode == 0 and 'Stage 2 not run' in r.stdout, r.stderr[-2000:]
