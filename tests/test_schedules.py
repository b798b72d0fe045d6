"Tests for `ulmfit_ext.schedules`: discriminative rates, STLR, gradual unfreezing and chain-thaw, checked against the paper's formulas on a tiny classifier."
import math
import numpy as np, pytest, torch
from fastai.text.all import (AWD_LSTM, Callback, CrossEntropyLossFlat, DataLoaders, L, ProgressCallback, TensorCategory,
                              TensorText, awd_lstm_clas_config, even_mults, noop, set_seed, text_classifier_learner)
from ulmfit_ext.core import UlmfitError
from ulmfit_ext.splitters import clas_splitter
from ulmfit_ext.schedules import *
from ulmfit_ext.schedules import _stlr_cut

NB = 10  # training batches per epoch of the tiny learner

def tiny_learner(seed=0, **kwargs):
    "A 4-group AWD-LSTM classifier (embedding, 2 LSTMs, head) on random token ids, `NB` batches per epoch"
    set_seed(seed)
    def ds(n):
        x = torch.randint(2, 30, (n, 12))
        return [(TensorText(a), TensorCategory(a[0] % 2)) for a in x]
    dls = DataLoaders.from_dsets(ds(4 * NB), ds(8), bs=4, shuffle=False, device='cpu')
    dls.vocab, dls.c = L([f'w{i}' for i in range(30)], ['even', 'odd']), 2
    cfg = dict(awd_lstm_clas_config, emb_sz=20, n_hid=10, n_layers=2)
    learn = text_classifier_learner(dls, AWD_LSTM, config=cfg, pretrained=False, seq_len=12, loss_func=CrossEntropyLossFlat(), **kwargs)
    learn.splitter, learn.logger = clas_splitter, noop
    learn.remove_cb(ProgressCallback)
    return learn

class ReadHypers(Callback):
    "Every group's lr and mom when the optimizer steps, and the head's Adam step count at each epoch start"
    order = 70
    def __init__(self): self.lrs, self.moms, self.head_steps = [], [], []
    def before_step(self):
        self.lrs.append([h['lr'] for h in self.opt.hypers]); self.moms.append([h['mom'] for h in self.opt.hypers])
    def before_epoch(self): self.head_steps.append(self.opt.state[self.opt.param_lists[-1][0]].get('step'))

class WhoTrains(Callback):
    "Per epoch: the groups whose parameters all require grad, and the groups whose weights changed"
    order = 10
    def __init__(self): self.trainable, self.changed = [], []
    def before_epoch(self): self.w0 = [[p.detach().clone() for p in pg] for pg in self.opt.param_lists]
    def after_epoch(self):
        pls = self.opt.param_lists
        self.trainable.append([i for i, pg in enumerate(pls) if all(p.requires_grad for p in pg)])
        self.changed.append([i for i, pg in enumerate(pls) if any(not torch.equal(p, q) for p, q in zip(pg, self.w0[i]))])

def n_steps(learn): return [learn.opt.state[pg[0]].get('step') for pg in learn.opt.param_lists]

# --- discriminative learning rates

def test_discriminative_lrs_follow_the_paper_rule():
    lrs = discriminative_lrs(1e-2, 5)
    np.testing.assert_allclose(lrs, [1e-2 / 2.6**k for k in (4, 3, 2, 1, 0)])
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], 2.6)
    np.testing.assert_allclose(discriminative_lrs(1e-2, 3, factor=1), [1e-2] * 3)
    np.testing.assert_allclose(discriminative_lrs(5e-3, 1), [5e-3])

def test_slice_matches_only_for_hand_picked_ends():
    np.testing.assert_allclose(even_mults(1e-2 / 2.6**4, 1e-2, 5), discriminative_lrs(1e-2, 5))
    four = np.array(even_mults(1e-2 / 2.6**4, 1e-2, 4))
    np.testing.assert_allclose(four[1:] / four[:-1], 2.6**(4 / 3))

@pytest.mark.parametrize('kw, msg', [(dict(factor=0.9), r'`factor`=0.9 is out of range.*2\.6 \(the paper\)'),
                                     (dict(lr=0.), r'`lr`=0.0 is out of range'),
                                     (dict(n_groups=0), r'`n_groups`=0 is out of range')])
def test_discriminative_lrs_errors(kw, msg):
    with pytest.raises(UlmfitError, match=msg): discriminative_lrs(**{**dict(lr=1e-2, n_groups=4), **kw})

def test_learner_discr_lrs_counts_groups_and_works_with_fit_one_cycle():
    learn, rd = tiny_learner(), ReadHypers()
    lrs = learn.discr_lrs(1e-2)
    np.testing.assert_allclose(lrs, [1e-2 / 2.6**k for k in (3, 2, 1, 0)])
    learn.fit_one_cycle(1, lrs, cbs=rd)
    got = np.array(rd.lrs)
    np.testing.assert_allclose(got[:, 1:] / got[:, :-1], 2.6)

# --- STLR

def test_stlr_paper_values():
    assert math.isclose(stlr(0, 100), 3.125e-4)
    assert math.isclose(stlr(10, 100), 1e-2)
    assert math.isclose(stlr(100, 100), 3.125e-4)
    assert math.isclose(stlr(55, 100), 1e-2 * (1 + 0.5 * 31) / 32)
    lrs = stlr(np.arange(101), 100)
    assert (np.diff(lrs[:11]) > 0).all() and (np.diff(lrs[10:]) < 0).all()

def test_stlr_per_group():
    glrs = discriminative_lrs(1e-2, 4)
    np.testing.assert_allclose(stlr(10, 100, glrs), glrs)
    np.testing.assert_allclose(stlr(0, 100, glrs), glrs / 32)
    assert stlr(np.arange(101), 100, glrs).shape == (101, 4)

def test_stlr_corner_cases():
    lrs = stlr(np.arange(26), 25)                    # T*cut_frac = 2.5: the formula's decay is 18 long, not 23
    assert math.isclose(lrs.min(), 1e-2 / 32) and np.allclose(lrs[-5:], 1e-2 / 32)
    assert _stlr_cut(5, 0.1) == 1 and math.isclose(stlr(1, 5), 1e-2)
    assert _stlr_cut(100, 0.29) == 29 and int(np.argmax(stlr(np.arange(101), 100, cut_frac=0.29))) == 29
    assert math.isclose(stlr(-1, 100), 1e-2 / 32) and math.isclose(stlr(101, 100), 1e-2 / 32)

@pytest.mark.parametrize('kw, msg', [(dict(cut_frac=0), r'`cut_frac`=0 is out of range: it must lie in \(0, 1\)'),
                                     (dict(cut_frac=1), r'`cut_frac`=1 is out of range'),
                                     (dict(ratio=0.5), r'`ratio`=0.5 is out of range.*paper uses 32'),
                                     (dict(T=0), r'`T`=0 is out of range')])
def test_stlr_errors(kw, msg):
    with pytest.raises(UlmfitError, match=msg): stlr(**{**dict(t=1, T=100), **kw})

def test_sched_stlr_maps_pct_to_exact_iterations():
    glrs = discriminative_lrs(1e-2, 4)
    f = SchedSTLR(glrs, 100)
    for t in (0, 9, 10, 37, 99): np.testing.assert_allclose(f(t / 100), stlr(t, 100, glrs))
    np.testing.assert_allclose(f(1.5), glrs / 32)
    with pytest.raises(UlmfitError, match='`ratio`'): SchedSTLR(glrs, 100, ratio=0)

def test_sched_cos_restarts():
    f = SchedCosRestarts(np.array([1., 2.]), 20, n_cycles=2)
    np.testing.assert_allclose(f(0), [1, 2]); np.testing.assert_allclose(f(0.25), [0.5, 1]); np.testing.assert_allclose(f(0.5), [1, 2])

# --- fit_stlr

def test_fit_stlr_discriminative_rates_batch_by_batch():
    learn, rd = tiny_learner(), ReadHypers()
    learn.fit_stlr(2, learn.discr_lrs(1e-2), cbs=rd)
    got = np.array(rd.lrs)
    assert got.shape == (2 * NB, 4)
    np.testing.assert_allclose(got[:, 1:] / got[:, :-1], 2.6)
    np.testing.assert_allclose(got[:, -1], stlr(np.arange(2 * NB), 2 * NB, 1e-2))
    np.testing.assert_allclose(learn.recorder.group_lrs, got)
    assert learn.recorder.group_trainable.all()

def test_fit_stlr_does_not_cycle_momentum():
    learn, rd = tiny_learner(), ReadHypers()
    learn.fit_stlr(1, 1e-3, cbs=rd)
    assert set(np.array(rd.moms).ravel()) == {0.9}
    rd2 = ReadHypers(); learn.fit_stlr(1, 1e-3, mom=0.7, cbs=rd2)
    assert set(np.array(rd2.moms).ravel()) == {0.7}

def test_fit_stlr_options_and_errors():
    learn, rd = tiny_learner(), ReadHypers()
    learn.lr = 3e-3
    learn.fit_stlr(1, cut_frac=0.5, ratio=4, cbs=rd)
    np.testing.assert_allclose(np.array(rd.lrs), np.tile(stlr(np.arange(NB), NB, 3e-3, 0.5, 4)[:, None], (1, 4)))
    with pytest.raises(UlmfitError, match='Got 2 learning rates for 4 layer groups'): learn.fit_stlr(1, [1e-3, 1e-2])
    with pytest.raises(UlmfitError, match='`cut_frac`=1.5'): learn.fit_stlr(1, 1e-2, cut_frac=1.5)
    with pytest.raises(UlmfitError, match='`n_epoch`=0'): learn.fit_stlr(0, 1e-2)

# --- gradual unfreezing

def test_fit_gradual_paper_thaws_one_group_per_epoch():
    learn, wt, rd = tiny_learner(), WhoTrains(), ReadHypers()
    learn.fit_gradual(5, cbs=[wt, rd])
    assert wt.trainable == [[3], [2, 3], [1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]
    assert wt.changed == wt.trainable                      # frozen groups' weights did not move
    T = 5 * NB
    np.testing.assert_allclose(learn.recorder.group_lrs, stlr(np.arange(T), T, learn.discr_lrs(1e-2)))
    assert learn.recorder.group_trainable.sum(0).tolist() == [2 * NB, 3 * NB, 4 * NB, 5 * NB]

def test_fit_gradual_paper_keeps_adam_state_of_thawed_groups():
    learn, rd = tiny_learner(), ReadHypers()
    learn.fit_gradual(4, cbs=rd)
    assert rd.head_steps == [None, NB, 2 * NB, 3 * NB]     # read after each thaw: never reset
    assert n_steps(learn) == [NB, 2 * NB, 3 * NB, 4 * NB]  # each group stepped since it thawed

def test_fit_gradual_scripts_stages():
    learn, wt, rd = tiny_learner(), WhoTrains(), ReadHypers()
    learn.fit_gradual(5, schedule='scripts', cbs=[wt, rd])
    assert wt.trainable == [[3], [2, 3], [0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]
    assert wt.changed == wt.trainable
    assert rd.head_steps == [None, None, None, NB, 2 * NB]  # fresh optimizer state at every stage
    assert n_steps(learn) == [3 * NB] * 4
    glr, lrs = learn.recorder.group_lrs, learn.discr_lrs(1e-2)
    assert glr.shape == (5 * NB, 4)                         # recorded across the three fits
    np.testing.assert_allclose(glr[:NB], stlr(np.arange(NB), NB, lrs, 1 / 3, 8))
    np.testing.assert_allclose(glr[NB:2 * NB], glr[:NB])
    np.testing.assert_allclose(glr[2 * NB:], stlr(np.arange(3 * NB), 3 * NB, lrs, 1 / 8, 8))

def test_gradual_unfreezing_callback_with_fit_one_cycle():
    learn, wt = tiny_learner(), WhoTrains()
    learn.fit_one_cycle(4, learn.discr_lrs(1e-2), cbs=[GradualUnfreezing(), wt])
    assert wt.changed == [[3], [2, 3], [1, 2, 3], [0, 1, 2, 3]]
    assert n_steps(learn) == [NB, 2 * NB, 3 * NB, 4 * NB]

@pytest.mark.parametrize('schedule, n_epoch, thawed, steps', [('paper', 4, [[3], [2, 3], [1, 2, 3]], [NB, 2 * NB, 3 * NB, 4 * NB]),
                                                              ('scripts', 3, [[3], [2, 3], [0, 1, 2, 3]], [NB] * 4)])
def test_fit_gradual_after_earlier_training(schedule, n_epoch, thawed, steps):
    learn, wt = tiny_learner(), WhoTrains()
    learn.fit(1, 1e-3)                                      # leaves gradients and Adam state on every group
    learn.fit_gradual(n_epoch, schedule=schedule, cbs=wt)
    assert wt.changed[:3] == thawed                         # no weight decay on frozen groups' stale grads
    assert n_steps(learn) == steps                    # stale Adam state cleared when a group thaws

def test_fit_gradual_sched_shapes():
    learn = tiny_learner()
    learn.fit_gradual(4, sched='const')
    np.testing.assert_allclose(learn.recorder.group_lrs, np.tile(learn.discr_lrs(1e-2), (4 * NB, 1)))
    learn.fit_gradual(4, sched='cos', factor=1)
    cos = learn.recorder.group_lrs
    np.testing.assert_allclose(cos[::NB], 1e-2)
    np.testing.assert_allclose(cos[NB // 2], 1e-2 / 2)
    assert (np.diff(cos[:NB, 0]) < 0).all()
    learn.fit_gradual(4, lr=2e-3, factor=3, cut_frac=0.25, ratio=10)
    np.testing.assert_allclose(learn.recorder.group_lrs, stlr(np.arange(4 * NB), 4 * NB, discriminative_lrs(2e-3, 4, 3), 0.25, 10))

@pytest.mark.parametrize('kw, msg', [(dict(n_epoch=3), r'needs at least one epoch per layer group \(4 groups\)'),
                                     (dict(n_epoch=3), r'learn.unfreeze\(\)` then `learn.fit_stlr'),
                                     (dict(n_epoch=2, schedule='scripts'), r'`n_epoch` must be at least 3; got 2'),
                                     (dict(schedule='fastai'), r"`schedule`='fastai' is not known: use one of 'paper', 'scripts'"),
                                     (dict(sched='onecycle'), r"`sched`='onecycle' is not known: use one of 'stlr', 'const', 'cos'"),
                                     (dict(factor=0.5), r'`factor`=0.5 is out of range'),
                                     (dict(cut_frac=0), r'`cut_frac`=0 is out of range'),
                                     (dict(ratio=0.5), r'`ratio`=0.5 is out of range')])
def test_fit_gradual_errors(kw, msg):
    learn = tiny_learner()
    with pytest.raises(UlmfitError, match=msg): learn.fit_gradual(**{**dict(n_epoch=4), **kw})
    assert learn.opt is None or not any('step' in s for s in learn.opt.state.values())   # failed before training

@pytest.mark.parametrize('kw', [dict(cut_frac=0), dict(ratio=0.5), dict(sched='x')])
def test_fit_gradual_scripts_fails_before_any_stage(kw):
    learn = tiny_learner()
    with pytest.raises(UlmfitError): learn.fit_gradual(4, schedule='scripts', **kw)
    assert all(p.requires_grad for p in learn.model.parameters())          # not even frozen for stage 1
    assert learn.opt is None or not any('step' in s for s in learn.opt.state.values())

# --- chain-thaw

def test_fit_chain_thaw():
    learn, wt = tiny_learner(train_bn=False), WhoTrains()
    learn.fit_chain_thaw(cbs=wt)
    assert wt.changed == [[3], [0], [1], [2], [0, 1, 2, 3]]
    assert wt.trainable == wt.changed
    np.testing.assert_allclose(learn.recorder.group_lrs, np.tile([1e-4, 1e-4, 1e-4, 1e-3], (5 * NB, 1)))
    assert n_steps(learn) == [NB] * 4
    with pytest.raises(UlmfitError, match='`n_epoch_per_layer`=0'): learn.fit_chain_thaw(n_epoch_per_layer=0)
    with pytest.raises(UlmfitError, match='`lr_other`=0'): learn.fit_chain_thaw(lr_other=0)

# --- plots

def test_plots():
    import matplotlib.pyplot as plt
    ax = plot_stlr(T=1000, lr_max=0.01, n_groups=5)
    assert len(ax.lines) == 5
    np.testing.assert_allclose(ax.lines[-1].get_ydata()[[0, 100, 1000]], [0.01 / 32, 0.01, 0.01 / 32])
    learn = tiny_learner()
    with pytest.raises(UlmfitError, match='No per-group learning rates were recorded'): learn.plot_group_lrs()
    learn.fit_gradual(4)
    ax = learn.plot_group_lrs()
    assert [l.get_label() for l in ax.lines] == [f'group {i}' for i in range(4)]
    assert np.isnan(ax.lines[0].get_ydata()[:3 * NB]).all() and not np.isnan(ax.lines[0].get_ydata()[3 * NB:]).any()
    plt.close('all')
