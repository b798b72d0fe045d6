"Learner factories and the Stage-2/Stage-3 recipes, on tiny models (and TREC-6 when SLOW=1)."
import re
import numpy as np, pandas as pd, pytest, torch
from fastai.text.all import accuracy, AWD_LSTM, TextBlock, DataBlock, CategoryBlock, ColReader, ColSplitter
from ulmfit_ext import lm_learner
from ulmfit_ext.core import UlmfitError
from ulmfit_ext.learner import *
from ulmfit_ext.learner import _encoder_of
from ulmfit_ext.test_utils import toy_df, toy_dls, tiny_cfg

@pytest.fixture(scope='module')
def dls():
    lm = toy_dls(is_lm=True)
    return lm, toy_dls(vocab=lm.vocab)

def test_top_level_import():
    import ulmfit_ext
    assert ulmfit_ext.lm_learner is lm_learner

def test_paper_defaults(dls):
    learn = lm_learner(dls[0])
    enc = learn.model[0]
    assert (enc.encoder.embedding_dim, enc.n_hid, enc.n_layers) == (400, 1152, 3)
    learn.create_opt()
    assert learn.opt.hypers[0]['mom'] == 0.7 and learn.opt.hypers[0]['sqr_mom'] == 0.99
    clas = clas_learner(dls[1], encoder=learn)
    assert clas.model[0].bptt == 70 and clas.model[0].max_len == 1400
    lins = [m for m in clas.model[1].modules() if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in lins] == [(1200, 50), (50, 2)]
    assert clas.model[0].module.input_dp.p == pytest.approx(0.4)   # paper's classifier dropouts, not halved

def test_groups_every_param_once(dls):
    from ulmfit_ext.splitters import check_groups
    for learn in (lm_learner(dls[0], config=tiny_cfg), clas_learner(dls[1], config=tiny_cfg)):
        check_groups(learn.model, learn.splitter(learn.model))

def test_vocab_mismatch_is_refused(dls):
    other = toy_dls(toy_df(seed=3).assign(text=lambda d: d.text + ' zebra'), is_lm=True)
    lm = lm_learner(other, config=tiny_cfg)
    with pytest.raises(UlmfitError, match=r"differs from the encoder's .* vocab=dls_lm.vocab"):
        clas_learner(dls[1], encoder=lm, config=tiny_cfg)

def test_stage2_discriminative_spacing_read_from_optimizer(dls):
    learn = lm_learner(dls[0], config=tiny_cfg)
    finetune_lm(learn, 1, lr=1e-2)
    lrs = np.array([h['lr'] for h in learn.opt.hypers])
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], 2.6, rtol=1e-6)
    g = learn.recorder.group_lrs
    assert g.shape[1] == 4 and np.argmax(g[:, -1]) == int(np.floor(len(g) * 0.1))   # STLR peak at cut

def test_stage3_ulmfit_learns_toy_task(dls):
    from fastai.text.all import set_seed
    set_seed(0)
    lm = lm_learner(dls[0], config=tiny_cfg)
    clas = clas_learner(dls[1], encoder=lm, config=tiny_cfg, drop_mult=0.1)   # a 10-unit model cannot carry the paper's dropouts
    train_classifier(clas, 8, lr=3e-2)
    assert clas.validate()[1] > 0.75

@pytest.mark.parametrize('variant', list(clas_variants))
def test_every_table7_variant_runs(dls, variant):
    lm = lm_learner(dls[0], config=tiny_cfg)
    clas = clas_learner(dls[1], encoder=None if variant == 'scratch' else lm, config=tiny_cfg)
    before = {n: p.detach().clone() for n, p in clas.model.named_parameters()}
    train_classifier(clas, 4, variant=variant, keep='last')   # what each variant trains (the best epoch may predate a thaw)
    changed = {n for n, p in clas.model.named_parameters() if not torch.equal(p, before[n])}
    head = {n for n in before if n.startswith('1.')}
    assert head <= changed                                   # every variant trains the head
    if variant == 'last': assert changed == head             # ... and 'last' nothing else
    else: assert any(n.startswith('0.module.encoder') for n in changed)

def _read_trec(path, split):
    f = path/('train_5500.label' if split == 'train' else 'TREC_10.label')
    lines = f.read_bytes().decode('latin-1').splitlines()
    rows = [(l.split(' ', 1)[1], l.split(':', 1)[0]) for l in lines if l.strip()]
    return pd.DataFrame(rows, columns=['text', 'label'])

@pytest.mark.slow
def test_trec6_end_to_end(shared_dataset):
    "Stage 2 + Stage 3 on the real TREC-6 data with a small model: accuracy well above the majority class"
    from fastai.text.all import set_seed
    p = shared_dataset('trec6')
    names = [f.name for f in p.iterdir()]
    if 'train_5500.label' not in names: pytest.skip(f'TREC-6 files not found in {p}: {names}')
    set_seed(0)
    tr, te = _read_trec(p, 'train'), _read_trec(p, 'test')
    tr['is_valid'] = np.arange(len(tr)) % 10 == 0
    lm_df = pd.concat([tr, te.assign(is_valid=False)])[['text', 'is_valid']]   # unlabelled test text may feed the LM
    cfg = dict(emb_sz=100, n_hid=200, n_layers=2)
    dls_lm = DataBlock(blocks=TextBlock.from_df('text', is_lm=True, seq_len=35), get_x=ColReader('text'), splitter=ColSplitter()).dataloaders(lm_df, bs=32, seq_len=35)
    lm = finetune_lm(lm_learner(dls_lm, config=cfg), 5, lr=2e-2)
    db = DataBlock(blocks=(TextBlock.from_df('text', vocab=dls_lm.vocab), CategoryBlock), get_x=ColReader('text'), get_y=ColReader('label'), splitter=ColSplitter())
    dls = db.dataloaders(tr, bs=32)
    clas = train_classifier(clas_learner(dls, encoder=lm, config=cfg), 10)
    preds = clas.get_preds(dl=dls.test_dl(te.text))[0].argmax(1).numpy()
    acc = (np.array(dls.vocab[1])[preds] == te.label.values).mean()
    majority = te.label.value_counts(normalize=True).max()
    print(f"TREC-6 test accuracy {acc:.3f} (majority class {majority:.3f})")
    assert acc > majority + 0.25   # measured: 0.582 with 4 LM + 6 classifier epochs (majority 0.276)

# ---------------------------------------------------------------- bad model arguments (issue 13, item 9)
@pytest.mark.parametrize('kw,msg', [
    (dict(config=dict(tiny_cfg, emb_sz=-5)), r'`emb_sz`=-5 is out of range'),
    (dict(config=dict(tiny_cfg, n_layers=0)), r'`n_layers`=0 is out of range'),
    (dict(config=dict(tiny_cfg, n_hid=0)), r'`n_hid`=0 is out of range'),
    (dict(config=tiny_cfg, drop_mult=-1), r'`drop_mult`=-1 is out of range'),
    (dict(config=tiny_cfg, drop_mult=float('nan')), r'`drop_mult`=nan is not a number'),
    (dict(config=tiny_cfg, drop_mult=9), r'`drop_mult`=9 makes dropout probabilities above 1'),
    (dict(config=dict(tiny_cfg, emb_sz=2**20)), r'mostly from `emb_sz`\), more than the .* of memory available'),
    (dict(config=dict(tiny_cfg, hiden_p=0.1)), r"unknown key\(s\) \['hiden_p'\] \('hiden_p': did you mean 'hidden_p'\?\)"),
    (dict(config=dict(tiny_cfg, weight_p=1.5)), r'`weight_p`=1.5 is out of range'),
])
def test_lm_learner_refuses_bad_sizes_before_building(dls, kw, msg, monkeypatch):
    "Each bad value is a `UlmfitError` naming the argument, raised before any tensor is allocated"
    import ulmfit_ext.learner as ul
    monkeypatch.setattr(ul, 'get_language_model', lambda *a, **k: pytest.fail('the model was built'))
    with pytest.raises(UlmfitError, match=msg): lm_learner(dls[0], **kw)

def test_absurd_size_checked_against_memory(dls, monkeypatch):
    "The estimate is compared with the memory available: a size that fits a big machine is refused on a small one"
    import ulmfit_ext.model_checks as ul
    monkeypatch.setattr(ul, 'available_memory', lambda: 10**6)   # a 1 MB machine
    with pytest.raises(UlmfitError, match=r'`emb_sz`=400, `n_hid`=1152 and `n_layers`=3 with \d+ tokens make a model of [\d,]+ parameters'):
        lm_learner(dls[0])
    monkeypatch.setattr(ul, 'available_memory', lambda: 3*10**8)   # fits, but not 4 copies for training
    with pytest.warns(UserWarning, match='training it with Adam needs about'): lm_learner(dls[0])

@pytest.mark.parametrize('kw,msg', [(dict(bptt=0), '`bptt`=0'), (dict(max_len=0), '`max_len`=0'), (dict(n_out=0), '`n_out`=0'),
                                     (dict(lin_ftrs=[50, -1]), r'`lin_ftrs\[1\]`=-1'), (dict(ps=[0.1, 0.1]), '`ps` has 2 dropout'),
                                     (dict(ps=[2.]), r'`ps\[0\]`=2.0'), (dict(drop_mult=-0.5), '`drop_mult`=-0.5')])
def test_clas_learner_refuses_bad_head(dls, kw, msg):
    with pytest.raises(UlmfitError, match=msg): clas_learner(dls[1], config=tiny_cfg, **kw)

# ---------------------------------------------------------------- determinism (issue 13, what to build 5)
def _seeded_run(kind, seed=0):
    "Build data and learner inside `deterministic(seed)`, fit one epoch; return the losses and the weights"
    from ulmfit_ext.core import deterministic
    with deterministic(seed):
        lm = toy_dls(is_lm=True)
        learn = lm_learner(lm, config=tiny_cfg) if kind == 'lm' else clas_learner(toy_dls(vocab=lm.vocab), config=tiny_cfg)
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    return [float(v) for v in learn.recorder.losses] + list(map(float, learn.recorder.values[-1])), learn.model.state_dict()

@pytest.mark.parametrize('kind', ['lm', 'clas'])
def test_two_seeded_runs_identical(kind):
    l1, w1 = _seeded_run(kind)
    l2, w2 = _seeded_run(kind)
    assert l1 == l2 and len(l1) > 3
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    l3, _ = _seeded_run(kind, seed=1)
    assert l3 != l1   # the seed matters

def test_given_budget_and_rate_switch_the_automatic_choices_off(dls):
    "Moved from `05_learner` (a hidden cell that took a third of the page's build): an explicit budget and rate, `keep`, `patience`, and Stage 2's automatic rate"
    from fastai.text.all import set_seed
    from ulmfit_ext.auto import auto_lm_lr
    set_seed(0)
    enc = lm_learner(dls[0], config=tiny_cfg, metrics=accuracy)
    finetune_lm(enc, 2, lr=4e-3)
    set_seed(0)
    c2 = clas_learner(dls[1], encoder=enc)
    train_classifier(c2, 5, lr=2e-2, patience='auto')
    r2 = c2.fit_report
    assert (r2.lr, r2.lr_source, r2.n_epoch, r2.epochs_run, r2.stopped_early, r2.lr_find) == (2e-2, 'given', 5, 5, False, None)
    assert c2.validate()[1] == pytest.approx(r2.best['accuracy'], abs=1e-5)      # the best epoch's weights are kept by default
    set_seed(0)
    c3 = clas_learner(dls[1], encoder=enc)
    train_classifier(c3, 5, lr=2e-2, keep='last')
    assert c3.validate()[1] == pytest.approx(c3.fit_report.history[-1]['accuracy'], abs=1e-5)   # the last epoch's, scored like the others
    assert train_classifier(clas_learner(dls[1], encoder=enc), 4, lr='paper').fit_report.lr == 1e-2
    with pytest.raises(UlmfitError, match="`keep`='first' is not known"): train_classifier(c3, 5, keep='first')
    with pytest.raises(UlmfitError, match='`patience`=0'): train_classifier(c3, 5, patience=0)
    l4 = lm_learner(dls[0], config=tiny_cfg)
    finetune_lm(l4)
    assert (l4.fit_report.lr, l4.fit_report.lr_source, l4.fit_report.monitor) == (auto_lm_lr(tiny_cfg['n_hid']), 'auto_lm_lr', 'valid_loss')
    assert l4.validate()[0] == pytest.approx(min(h['valid_loss'] for h in l4.fit_report.history), abs=1e-4)   # the epoch kept is the lowest validation loss
