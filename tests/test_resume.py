"""Issue 13, item 17: per-epoch checkpoints and exact resumption in Stage 2 and Stage 3, from Python and from the command line;
kill -9 of every stage through the CLI (slow)."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from fastai.callback.core import Callback
from ulmfit_ext import cli
from ulmfit_ext.core import UlmfitError
from ulmfit_ext.cli import main
from ulmfit_ext.bundle import load_bundle
from ulmfit_ext.test_utils import toy_df, tiny_cfg
from ulmfit_ext.pipeline import stage2, stage3
from ulmfit_ext.stage_checkpoint import checkpoints, load_stage_checkpoint
from ulmfit_ext.pretrain import _toy_corpus

REPO = Path(cli.__file__).parent.parent
ULMFIT = Path(sys.executable).parent/'ulmfit'

class CtrlC(Callback):
    "Raise `KeyboardInterrupt` at the first batch of the recipe's epoch `at` (1-based, counted over all its fits)"
    order = 200
    def __init__(self, at): self.at, self.n = at, 0
    def before_epoch(self): self.n += 1
    def after_batch(self):
        if self.training and self.n == self.at: raise KeyboardInterrupt()

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp('resume')
    mp = pytest.MonkeyPatch(); mp.setenv('ULMFIT_CACHE', str(d/'cache'))
    df = toy_df(160)
    lm = stage2(df, None, config=tiny_cfg, epochs=1, progress=False)
    yield d, df, lm
    mp.undo()

def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)

def _interrupted_then_resumed(fn, ck, at):
    "Run `fn` with checkpoints in `ck`, interrupted in epoch `at`; then again, resuming; the second run"
    with pytest.raises(KeyboardInterrupt): fn(checkpoint_dir=ck, cbs=CtrlC(at))
    assert [f.name for f in checkpoints(ck)][-1] == f'epoch_{at-1:03d}.pth'   # every finished epoch kept (the newest two files)
    return fn(checkpoint_dir=ck)

@pytest.mark.parametrize('kind', ['lm', 'classifier (automatic rate)', 'classifier, scripts schedule', 'classifier, chain-thaw'])
def test_interrupted_run_resumes_exactly(toy, tmp_path, kind):
    "Ctrl-C in the middle of an epoch, then the same call: the result is the uninterrupted run's, weights and report bit for bit"
    d, df, lm = toy
    fn, at = {'lm': (lambda **k: stage2(df, None, config=tiny_cfg, epochs=4, progress=False, is_deterministic=True, **k), 3),
              'classifier (automatic rate)': (lambda **k: stage3(df, lm, valid_col='is_valid', epochs=6, progress=False, is_deterministic=True, **k), 5),
              'classifier, scripts schedule': (lambda **k: stage3(df, lm, valid_col='is_valid', epochs=5, lr=1e-2, schedule='scripts', progress=False, **k), 3),
              'classifier, chain-thaw': (lambda **k: stage3(df, lm, valid_col='is_valid', epochs=1, lr=1e-2, variant='chain-thaw', progress=False, **k), 3)}[kind]
    ref = fn()
    res = _interrupted_then_resumed(fn, tmp_path/'ck', at)
    assert res.resumed == [at - 1]
    assert res.report.as_dict() == ref.report.as_dict()      # every epoch's scores, the epoch kept, the finder's curve
    assert _same_weights(res.learn.model, ref.learn.model)   # the kept (best) weights
    assert (res.learn.recorder.group_lrs == ref.learn.recorder.group_lrs).all()   # the schedule went on where it was
    m, m_ref = res.metrics(), ref.metrics()
    for k in ('seconds', 'versions'): m.pop(k); m_ref.pop(k)
    assert m == m_ref
    saved = res.save(tmp_path/'out')
    assert saved['resumed_after'] == [at - 1] and not (tmp_path/'ck').exists()   # saved: the checkpoints go

def test_resume_refuses_other_settings_or_data(toy, tmp_path):
    d, df, lm = toy
    ck = tmp_path/'ck'
    run = lambda data=df, **k: stage3(data, lm, valid_col='is_valid', epochs=5, lr=1e-2, progress=False, checkpoint_dir=ck, **k)
    with pytest.raises(KeyboardInterrupt): run(cbs=CtrlC(3))
    with pytest.raises(UlmfitError, match=r"\(2 epoch\(s\) done\) with other settings \(epochs: 5 then, 6 now\).*`resume=False`"):
        stage3(df, lm, valid_col='is_valid', epochs=6, lr=1e-2, progress=False, checkpoint_dir=ck)
    edited = df.copy(); edited.loc[3, 'text'] += ' changed'
    with pytest.raises(UlmfitError, match=r"other settings \(data_sha256: '[0-9a-f]{64}' then, '[0-9a-f]{64}' now\)"): run(edited)
    checkpoints(ck)[-1].write_bytes(b'half a file')   # a damaged newest checkpoint: the one before it is used, with a warning
    with pytest.warns(UserWarning, match=r'Skipped the damaged checkpoint\(s\) epoch_002.pth .*resuming from epoch_001.pth'):
        assert load_stage_checkpoint(ck)['epoch'] == 1
    fresh = run(resume=False)   # starts afresh: the old checkpoints are replaced at its first save
    assert fresh.resumed == [] and load_stage_checkpoint(ck)['resumed'] == [] and load_stage_checkpoint(ck)['epoch'] == 5

def test_interrupted_before_the_first_epoch_leaves_nothing(toy, tmp_path):
    d, df, lm = toy
    with pytest.raises(KeyboardInterrupt): stage3(df, lm, valid_col='is_valid', epochs=5, lr=1e-2, progress=False, checkpoint_dir=tmp_path/'ck', cbs=CtrlC(1))
    assert not (tmp_path/'ck').exists()

def _opt_state_devices(learn) -> set:
    "(parameter device, state tensor device) pairs of every optimizer state tensor"
    return {(p.device, v.device) for p, st in learn.opt.state.items() for v in st.values() if torch.is_tensor(v)}

def test_resume_on_a_named_device(toy, tmp_path):
    "Issue 14: the device is not part of a run's identity, so a run interrupted with the default device resumes with `device='cpu'` to the uninterrupted run's result; metrics record device and precision"
    d, df, lm = toy
    fn = lambda **k: stage3(df, lm, valid_col='is_valid', epochs=5, lr=1e-2, progress=False, is_deterministic=True, **k)
    ref = fn(device='cpu')
    with pytest.raises(KeyboardInterrupt): fn(checkpoint_dir=tmp_path/'ck', cbs=CtrlC(3))
    res = fn(checkpoint_dir=tmp_path/'ck', device='cpu')
    assert res.resumed == [2] and _same_weights(res.learn.model, ref.learn.model)
    assert _opt_state_devices(res.learn) == {(torch.device('cpu'), torch.device('cpu'))}
    m = res.metrics()
    assert (m['device'], m['precision']) == ('cpu', 'fp32')

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('precision', ['fp32', 'fp16'])
def test_resume_on_cuda_puts_the_optimizer_state_on_the_gpu(toy, tmp_path, precision):
    "Issue 14, on a GPU: a classifier interrupted and resumed on CUDA trains on (its state beside the weights, on the GPU)"
    d, df, lm = toy
    fn = lambda **k: stage3(df, lm, valid_col='is_valid', epochs=5, lr=1e-2, progress=False, device='cuda', precision=precision, **k)
    with pytest.raises(KeyboardInterrupt): fn(checkpoint_dir=tmp_path/'ck', cbs=CtrlC(3))
    res = fn(checkpoint_dir=tmp_path/'ck')
    assert res.resumed == [2] and {(a.type, b.type) for a, b in _opt_state_devices(res.learn)} == {('cuda', 'cuda')}

# ---------------------------------------------------------------- through the command line

TINY_LM = ['--pretrained', 'none', '--emb-sz', '16', '--n-hid', '16', '--n-layers', '2', '--bs', '8', '--bptt', '10', '--min-freq', '1']
TINY_CLAS = ['--bs', '8', '--bptt', '10', '--valid-col', 'is_valid', '--epochs', '5', '--lr', '0.01']

def _call(args, capsys):
    capsys.readouterr()
    try: main([str(a) for a in args]); code = 0
    except SystemExit as e: code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err

def test_cli_ctrl_c_then_resume(toy, tmp_path, capsys, monkeypatch):
    "train-classifier: Ctrl-C after epoch 2 keeps both epochs; the same command resumes and saves what an uninterrupted run saves"
    d, df, lm = toy
    df.to_csv(tmp_path/'data.csv', index=False)
    assert _call(['finetune-lm', tmp_path/'data.csv', '--out', tmp_path/'lm', '--epochs', '1', *TINY_LM], capsys)[0] == 0
    args = lambda out: ['train-classifier', tmp_path/'data.csv', '--lm', tmp_path/'lm', '--out', out, *TINY_CLAS]
    assert _call(args(tmp_path/'ref'), capsys)[0] == 0
    import ulmfit_ext.pipeline as P
    real = P.train_classifier
    with monkeypatch.context() as m:
        m.setattr(P, 'train_classifier', lambda *a, cbs=None, **k: real(*a, cbs=[*cbs, CtrlC(3)], **k))
        code, _, err = _call(args(tmp_path/'cut'), capsys)
    assert code == 130 and err.strip().splitlines() == [f"ulmfit train-classifier: error: interrupted; the 2 finished epoch(s) are kept in {tmp_path/'cut'/'checkpoints'}: "
                                                        "run the same command again to resume (--no-resume starts afresh)"]
    assert not (tmp_path/'cut'/'metrics.json').exists()
    code, out, _ = _call(args(tmp_path/'cut'), capsys)
    assert code == 0 and 'Resuming from' in out and '(resumed after epoch 2)' in out
    ref, cut = load_bundle(tmp_path/'ref'/'bundle'), load_bundle(tmp_path/'cut'/'bundle')
    assert ref.state_dict.keys() == cut.state_dict.keys() and all(torch.equal(ref.state_dict[k], cut.state_dict[k]) for k in ref.state_dict)
    m_ref, m_cut = (json.loads((tmp_path/o/'metrics.json').read_text()) for o in ('ref', 'cut'))
    assert m_cut['resumed_after'] == [2] and m_cut['fit'] == m_ref['fit'] and m_cut['valid'] == m_ref['valid']
    assert not (tmp_path/'cut'/'checkpoints').exists()
    code, out, _ = _call([*args(tmp_path/'again'), '--no-resume'], capsys)   # --no-resume in a fresh folder: simply a run
    assert code == 0 and 'resumed' not in out

# ---------------------------------------------------------------- kill -9 (slow)

_CHILD = """
import sys, time, torch; torch.set_num_threads(1)
import ulmfit_ext.pipeline as P, ulmfit_ext.pretrain as PT
for cls in (P.StageCheckpoint, PT.EpochCheckpoint):   # hold still right after the first checkpoint: the kill comes here
    save = cls.save if cls is PT.EpochCheckpoint else cls._save
    def held(self, n, _save=save):
        r = _save(self, n)
        if n == 1: time.sleep(600)
        return r
    setattr(cls, 'save' if cls is PT.EpochCheckpoint else '_save', held)
from ulmfit_ext.cli import main
main(sys.argv[1:])
"""

def _env(tmp):
    return dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO), ULMFIT_CACHE=str(tmp/'cache'))

def _killed_after_first_epoch(args, out, tmp):
    "Run `ulmfit ARGS` in a child held after its first checkpoint, and kill -9 it there"
    proc = subprocess.Popen([sys.executable, '-c', _CHILD, *map(str, args)], env=_env(tmp), cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ck, t0 = out/'checkpoints'/'epoch_001.pth', time.time()
    try:
        while not ck.exists():
            assert proc.poll() is None, f"ended early: {proc.stderr.read().decode()[-2000:]}"
            assert time.time() - t0 < 600, "no checkpoint after 600 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL); proc.wait(); proc.stderr.close()
    assert not (out/'metrics.json').exists() and [f.name for f in (out/'checkpoints').glob('epoch_*.pth')] == ['epoch_001.pth']

def _script(args, tmp):
    if not ULMFIT.exists(): pytest.skip(f"{ULMFIT} is not installed")
    r = subprocess.run([str(ULMFIT), *map(str, args)], capture_output=True, text=True, env=_env(tmp), cwd=tmp, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r

@pytest.mark.slow
@pytest.mark.parametrize('stage', ['pretrain', 'finetune-lm', 'train-classifier'])
def test_kill_9_then_resume_through_the_cli(stage, tmp_path):
    "kill -9 right after the first epoch's checkpoint; the same command resumes and ends with the uninterrupted run's weights"
    df = toy_df(120)
    df.to_csv(tmp_path/'data.csv', index=False)
    _toy_corpus(tmp_path/'corpus.txt', n=300)
    if stage == 'train-classifier': _script(['finetune-lm', tmp_path/'data.csv', '--out', tmp_path/'lm', '--epochs', '1', *TINY_LM], tmp_path)
    args = {'pretrain': lambda o: ['pretrain', tmp_path/'corpus.txt', '--out', o, '--preset', 'tiny', '--epochs', '3', *TINY_LM[2:], '--deterministic'],
            'finetune-lm': lambda o: ['finetune-lm', tmp_path/'data.csv', '--out', o, '--epochs', '3', *TINY_LM, '--deterministic'],
            'train-classifier': lambda o: ['train-classifier', tmp_path/'data.csv', '--lm', tmp_path/'lm', '--out', o, *TINY_CLAS, '--deterministic']}[stage]
    _script(args(tmp_path/'ref'), tmp_path)
    _killed_after_first_epoch(args(tmp_path/'cut'), tmp_path/'cut', tmp_path)
    r = _script(args(tmp_path/'cut'), tmp_path)
    assert 'Resuming from' in r.stdout and 'bundle sha256' in r.stdout
    ref, cut = load_bundle(tmp_path/'ref'/'bundle'), load_bundle(tmp_path/'cut'/'bundle')
    assert all(torch.equal(ref.state_dict[k], cut.state_dict[k]) for k in ref.state_dict)
    if stage != 'pretrain': assert not (tmp_path/'cut'/'checkpoints').exists()
