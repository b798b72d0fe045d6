"""Stage 1 on several processes (torch DDP through fastai's `DistributedTrainer`/`DistributedDL`, gloo on the CPU): how the LM streams are shared
out, the refusals, and (slow) a 2-process torchrun against 1 process at the same global batch, rank-0-only outputs, and kill -9 then resume."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from fastai.text.all import BaseTokenizer
from ulmfit_ext.core import UlmfitError
from ulmfit_ext import pretrain as pt
from ulmfit_ext.distrib import ddp_parts

REPO = Path(__file__).resolve().parent.parent
FAST = dict(tok=BaseTokenizer(), n_workers=0, progress=False)

@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch): monkeypatch.setenv('ULMFIT_CACHE', str(tmp_path/'cache'))

@pytest.fixture
def corpus(tmp_path): return pt._toy_corpus(tmp_path/'corpus.txt', n=300), pt._toy_corpus(tmp_path/'valid.txt', n=40, seed=1)

def test_shards_are_the_streams_of_the_global_batch(corpus, monkeypatch):
    "bs=4 on each of 2 ranks: together, batch for batch, exactly the sequences of bs=8 on one process (none twice, none lost)"
    pytest.importorskip('accelerate')   # `fastai.distributed` imports it
    _, DDL = ddp_parts()
    monkeypatch.setattr(DDL, '_broadcast', lambda self, t, rank: list(t))   # no process group here: rank 0's order is every rank's
    one = pt.pretrain_dls(corpus[0], corpus[1], bs=8, bptt=10, min_freq=1, seed=0, **FAST).train
    two = pt.pretrain_dls(corpus[0], corpus[1], bs=4, bptt=10, min_freq=1, seed=0, **FAST).train
    one.shuffle = two.shuffle = False   # the shuffle of the documents is the same on every rank (same seed); compare the layout
    ranks = [list(DDL(two, rank=r, world_size=2)) for r in (0, 1)]
    ref = list(one)
    assert len(ref) == len(ranks[0]) == len(ranks[1]) > 0
    for (x, y), (x0, y0), (x1, y1) in zip(ref, *ranks):
        both = torch.stack([x0, x1], 1).reshape(8, -1)   # rank 0 holds streams 0, 2, 4, 6 of the bs=8 layout, rank 1 streams 1, 3, 5, 7
        assert torch.equal(both, x) and torch.equal(torch.stack([y0, y1], 1).reshape(8, -1), y)

def test_var_bptt_refused_with_several_processes(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv('WORLD_SIZE', '2')
    match = 'var_bptt' if pytest.importorskip('accelerate') else ''
    with pytest.raises(UlmfitError, match=match): pt.pretrain_lm(corpus[0], tmp_path/'o', valid=corpus[1], preset='tiny', var_bptt=True, **FAST)
    assert not (tmp_path/'o').exists()

def test_without_accelerate_refused(corpus, tmp_path, monkeypatch):
    "`fastai.distributed` cannot be imported without `accelerate`: a clear error, not a NameError from fastai"
    monkeypatch.setenv('WORLD_SIZE', '2'); monkeypatch.setitem(sys.modules, 'accelerate', None); monkeypatch.delitem(sys.modules, 'fastai.distributed', raising=False)
    ddp_parts.cache_clear()
    try:
        with pytest.raises(UlmfitError, match=r"without `accelerate`.*pip install accelerate"): pt.pretrain_lm(corpus[0], tmp_path/'o', valid=corpus[1], preset='tiny', **FAST)
    finally: ddp_parts.cache_clear()
    assert not (tmp_path/'o').exists()

# ---------------------------------------------------------------- slow: real processes with torchrun
def _launch(nproc, corpus, out, bs, report, sleep_at=None, wait=True):
    args = [str(corpus[0]), str(corpus[1]), str(out), str(bs), str(report)] + ([] if sleep_at is None else [str(sleep_at)])
    cmd = [sys.executable, str(REPO/'tests'/'ddp_stage1.py'), *args] if nproc == 1 else \
          [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(nproc), str(REPO/'tests'/'ddp_stage1.py'), *args]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]), OMP_NUM_THREADS='1')
    t0 = time.time()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True)
    if not wait: return p
    log, _ = p.communicate(timeout=300)
    assert p.returncode == 0, log[-3000:]
    return [json.loads(Path(f'{report}.rank{r}.json').read_text()) for r in range(nproc)], time.time() - t0, log

@pytest.mark.slow   # three torchrun launches of 2 processes, one of 1: ~60 s on a loaded 2-core machine
def test_two_processes_match_one(corpus, tmp_path):
    pytest.importorskip('accelerate')
    (one,), w1, _ = _launch(1, corpus, tmp_path/'one', 8, tmp_path/'r1')
    two, w2, _ = _launch(2, corpus, tmp_path/'two', 4, tmp_path/'r2')
    # the same global batch: bs=8 on 1 process is bs=4 on each of 2 ranks, the same sequences (see the fast test) and the same number of steps
    assert [len(r['losses']) for r in two] == [len(one['losses'])]*2 and sum(r['tokens'] for r in two) == one['tokens']
    assert [[t for pair in zip(a, b) for t in pair] for a, b in zip(two[0]['first_inputs'], two[1]['first_inputs'])] == one['first_inputs']   # streams interleave
    # STLR over the layer groups: every step's rate of every group from `learn.opt.hypers`, equal on both ranks and to one process's
    # (Stage 1 trains from scratch with one peak rate for all 4 groups; discriminative rates are Stage 2's and 3's)
    assert two[0]['lrs'] == two[1]['lrs'] == one['lrs'] and {len(l) for l in one['lrs']} == {4}
    top = [l[-1] for l in one['lrs']]; peak = top.index(max(top))
    assert 0 < peak < len(top) - 1 and max(top) == pytest.approx(5e-3) and top[0] == pytest.approx(5e-3/32)   # slanted triangle: lr/ratio up to lr, down
    mean2 = [(a + b)/2 for a, b in zip(two[0]['losses'], two[1]['losses'])]
    diff = [abs(a - b) for a, b in zip(one['losses'], mean2)]
    # the dropout masks differ (4 rows drawn per rank, not 8), so not bit-equal: within 0.01 over the first 10 steps, 0.1 over all, 2% on valid loss
    assert max(diff[:10]) < 0.01 and max(diff) < 0.1, diff
    assert two[0]['valid_loss'] == two[1]['valid_loss'] and abs(two[0]['valid_loss'] - one['valid_loss']) < 0.02*one['valid_loss']
    # rank 0 alone wrote: one bundle, one metrics.json, the two newest checkpoints, nothing else
    out = tmp_path/'two'
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path/'one').iterdir()) == ['bundle', 'checkpoints', 'loss.png', 'metrics.json', 'settings.json']
    assert sorted(p.name for p in (out/'checkpoints').iterdir()) == ['epoch_002.pth', 'epoch_003.pth']
    assert json.loads((out/'metrics.json').read_text())['valid_loss'] == two[0]['valid_loss']
    print(f"\n{'':10}{'valid loss by epoch':>26}{'wall s':>8}{'fit s':>7}{'tok/s/proc':>11}{'tok/s total':>12}")
    for name, reps, wall in (('1 x bs=8', [one], w1), ('2 x bs=4', two, w2)):
        fit = max(r['seconds'] for r in reps)
        vl = ' '.join(f"{e['valid_loss']:.4f}" for e in reps[0]['epochs'])
        print(f"{name:10}{vl:>26}{wall:8.1f}{fit:7.1f}"
              f"{sum(r['tokens'] for r in reps)/len(reps)/fit:11.0f}{sum(r['tokens'] for r in reps)/fit:12.0f}")

@pytest.mark.slow   # two torchrun launches of 2 processes: ~35 s
def test_kill_launcher_then_resume(corpus, tmp_path):
    "kill -9 the launcher and its workers after the first checkpoint; relaunching resumes every rank from that one file and finishes"
    pytest.importorskip('accelerate')
    out = tmp_path/'two'
    p = _launch(2, corpus, out, 4, tmp_path/'r', sleep_at=0, wait=False)
    ck1, t0 = out/'checkpoints'/'epoch_001.pth', time.time()
    try:
        while not ck1.exists():
            assert p.poll() is None, f"the run ended early: {p.stdout.read()[-3000:]}"
            assert time.time() - t0 < 200, "no checkpoint after 200 s"
            time.sleep(0.05)
    finally:
        os.killpg(p.pid, signal.SIGKILL); p.wait(); p.stdout.close()
    assert not (out/'metrics.json').exists() and [f.name for f in pt.checkpoints(out/'checkpoints')] == ['epoch_001.pth']
    reps, _, log = _launch(2, corpus, out, 4, tmp_path/'r')
    resumed = [l for l in log.splitlines() if 'Resuming from' in l]
    assert len(resumed) == 2 and all(str(ck1) in l for l in resumed), resumed   # both ranks, the same checkpoint
    assert [len(r['losses']) for r in reps] == [100, 100]   # epochs 2 and 3 only (50 steps each)
    assert [(h['epoch'], h['run']) for h in reps[0]['epochs']] == [(1, 0), (2, 1), (3, 1)] and (out/'bundle'/'weights.pth').exists()
