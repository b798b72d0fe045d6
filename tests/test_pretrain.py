"Tests of Stage-1 pretraining: presets, checkpoints, resumption after a kill, refusals, the bundle for Stage 2, and `find_stage1`."
import json, math, os, re, signal, subprocess, sys, time
from pathlib import Path
import numpy as np, pytest, torch
from fastai.text.all import BaseTokenizer, Callback, Learner
from ulmfit_ext.core import UlmfitError, dataset_path
from ulmfit_ext.schedules import stlr
from ulmfit_ext import pretrain as pt
from ulmfit_ext import stage1 as s1
from ulmfit_ext.stage1 import find_stage1
from ulmfit_ext.pretrain import pretrain_lm, pretrain_dls, checkpoints, load_checkpoint, pretrain_presets, fix_wikitext

REPO = Path(__file__).resolve().parent.parent
FAST = dict(tok=BaseTokenizer(), n_workers=0, progress=False)
SMALL = dict(preset='tiny', n_epoch=3, bs=8, bptt=10, min_freq=1, config=dict(emb_sz=16, n_hid=24, n_layers=2))

@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    "One thread (2 shared cores), caches and data sets in tmp dirs"
    monkeypatch.setenv('ULMFIT_CACHE', str(tmp_path/'cache'))
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture
def corpus(tmp_path):
    c = pt._toy_corpus(tmp_path/'corpus.txt', n=300)
    v = pt._toy_corpus(tmp_path/'valid.txt', n=40, seed=1)
    return c, v

def _run(corpus, out, **kw): return pretrain_lm(corpus[0], out, valid=corpus[1], **{**SMALL, **FAST, **kw})

class _Stop(Exception): pass

class _StopAfter(Callback):
    "Raise after epoch `n` (0-based) once its checkpoint is written: an interruption"
    order = 99
    def __init__(self, n): self.n = n
    def after_epoch(self):
        if self.epoch == self.n: raise _Stop('interrupted')

class _CountEpochs(Callback):
    "Count the epochs that really train (not those skipped on resumption)"
    def __init__(self): self.trained = []
    def after_train(self): self.trained.append(self.epoch)

def test_presets():
    assert set(pretrain_presets) == {'tiny', 'small', 'paper'}
    assert pretrain_presets['paper']['config'] == dict(emb_sz=400, n_hid=1152, n_layers=3)
    for p in pretrain_presets.values(): assert {'n_epoch', 'lr', 'bs', 'max_vocab', 'min_freq', 'max_tokens', 'config'} <= set(p)
    with pytest.raises(UlmfitError, match="choose one of"): pretrain_lm('x', 'y', preset='huge')

def test_dls_valid_file_and_random(corpus):
    dls = pretrain_dls(corpus[0], corpus[1], bs=8, bptt=10, min_freq=1, **FAST)
    assert len(dls.train.items) == 300 and len(dls.valid.items) == 40
    dls2 = pretrain_dls(corpus[0], None, bs=8, bptt=10, min_freq=1, valid_pct=0.2, seed=1, **FAST)
    assert len(dls2.valid.items) == 60 and len(dls2.train.items) == 240
    dls3 = pretrain_dls(corpus[0], None, bs=8, bptt=10, min_freq=1, valid_pct=0.2, seed=1, **FAST)
    assert list(dls3.valid.dataset.items) == list(dls2.valid.dataset.items) and len(dls2.valid.dataset.items) == 60   # the split is reproducible, as resumption needs

def test_vocab_limits(corpus):
    dls = pretrain_dls(corpus[0], corpus[1], bs=8, bptt=10, min_freq=1, max_vocab=10, **FAST)
    assert len(dls.vocab) <= 10 + 8   # fastai pads the vocabulary to a multiple of 8
    big = pretrain_dls(corpus[0], corpus[1], bs=8, bptt=10, min_freq=1, **FAST)
    assert len(big.vocab) > len(dls.vocab)

def test_fix_wikitext():
    assert fix_wikitext('the 1 @,@ 000 @-@ strong <unk> army') == 'the 1,000-strong xxunk army'

def test_full_run_outputs(corpus, tmp_path):
    out = tmp_path/'run'
    res = _run(corpus, out)
    m = json.loads((out/'metrics.json').read_text())
    assert [h['epoch'] for h in m['epochs']] == [1, 2, 3] and m['n_epoch'] == 3
    for h in m['epochs']: assert math.isclose(h['perplexity'], math.exp(h['valid_loss']), rel_tol=1e-4)
    assert m['epochs'][-1]['valid_loss'] < m['epochs'][0]['valid_loss']   # it learns the toy grammar
    assert m['perplexity'] == res.perplexity and m['data']['valid_docs'] == 40
    assert (out/'loss.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    b = pt.load_bundle(out/'bundle') if hasattr(pt, 'load_bundle') else __import__('ulmfit_ext.bundle', fromlist=['x']).load_bundle(out/'bundle')
    assert b.kind == 'lm' and b.config['awd_lstm']['n_hid'] == 24
    assert b.provenance['metrics']['perplexity'] == m['perplexity'] and b.provenance['data']['preset'] == 'tiny'
    # the STLR schedule of the whole run: one triangle over all iterations
    lrs, T = np.array(load_checkpoint(out/'checkpoints')['lrs']), len(res.learn.dls.train)*3
    assert len(lrs) == T and np.allclose(lrs, stlr(np.arange(T), T, pretrain_presets['tiny']['lr'], 0.1, 32))
    assert not list((out/'checkpoints').glob('.*.part')) and len(checkpoints(out/'checkpoints')) == 2   # keep=2

def test_refuses_to_clobber_finished(corpus, tmp_path):
    out = tmp_path/'run'
    _run(corpus, out, n_epoch=1)
    with pytest.raises(UlmfitError, match='finished pretraining run'): _run(corpus, out, n_epoch=1)
    before = (out/'metrics.json').stat().st_mtime_ns
    res = _run(corpus, out, n_epoch=1, overwrite=True)
    assert (out/'metrics.json').stat().st_mtime_ns != before and res.metrics['runs'] == 1

def test_resume_in_process_matches_uninterrupted(corpus, tmp_path):
    "Interrupted after epoch 1 and resumed: same learning rates at every iteration, same epochs, same final weights"
    ref = _run(corpus, tmp_path/'ref')
    with pytest.raises(_Stop): _run(corpus, tmp_path/'cut', cbs=[_StopAfter(0)])
    ck = load_checkpoint(tmp_path/'cut'/'checkpoints')
    assert ck['epoch'] == 1 and not (tmp_path/'cut'/'metrics.json').exists()
    cnt = _CountEpochs()
    res = _run(corpus, tmp_path/'cut', cbs=[cnt])
    assert cnt.trained == [1, 2]   # 0-based: epochs 2 and 3, not 1 again
    n = len(res.learn.dls.train)
    lr_ref = load_checkpoint(tmp_path/'ref'/'checkpoints')['lrs']
    lr_cut = load_checkpoint(tmp_path/'cut'/'checkpoints')['lrs']
    assert len(lr_cut) == len(lr_ref) == 3*n
    assert lr_cut[n] == lr_ref[n]   # the first rate after resuming is the uninterrupted run's
    assert np.allclose(lr_cut, lr_ref)
    assert [h['run'] for h in res.metrics['epochs']] == [0, 1, 1]
    sd_ref, sd_cut = ref.learn.model.state_dict(), res.learn.model.state_dict()
    assert all(torch.allclose(sd_ref[k], sd_cut[k], atol=1e-5) for k in sd_ref)

def test_resume_after_last_epoch_only_finishes(corpus, tmp_path):
    "Killed after the last checkpoint but before the bundle: resuming trains nothing and writes the outputs"
    out = tmp_path/'cut'
    with pytest.raises(_Stop): _run(corpus, out, n_epoch=1, cbs=[_StopAfter(0)])
    assert not (out/'bundle').exists()
    cnt = _CountEpochs()
    res = _run(corpus, out, n_epoch=1, cbs=[cnt])
    assert cnt.trained == [] and (out/'bundle'/'weights.pth').exists() and res.metrics['n_epoch'] == 1

def test_resume_refuses_other_settings(corpus, tmp_path):
    out = tmp_path/'cut'
    with pytest.raises(_Stop): _run(corpus, out, cbs=[_StopAfter(0)])
    with pytest.raises(UlmfitError, match=r"other settings \(lr: 0.005 then, 0.02 now"): _run(corpus, out, lr=2e-2)
    with pytest.raises(UlmfitError, match="n_epoch: 3 then, 4 now"): _run(corpus, out, n_epoch=4)
    with pytest.raises(UlmfitError, match="unfinished run. Pass `resume=True`"): _run(corpus, out, resume=False)
    res = _run(corpus, out, progress=True)   # display settings may differ: it resumes
    assert [h['run'] for h in res.metrics['epochs']] == [0, 1, 1]
    res = _run(corpus, out, resume=False, overwrite=True)   # starts over
    assert [h['run'] for h in res.metrics['epochs']] == [0, 0, 0]

_CHILD = """
import time, torch; torch.set_num_threads(1)
from fastai.text.all import BaseTokenizer, Callback
from ulmfit_ext.pretrain import pretrain_lm
class Slow(Callback):
    order = 99
    def after_epoch(self):
        if self.epoch == 0: time.sleep(600)   # the kill comes here, after the epoch-1 checkpoint
pretrain_lm({c!r}, {o!r}, valid={v!r}, cbs=[Slow()], tok=BaseTokenizer(), n_workers=0, progress=False, **{kw!r})
"""

def test_kill_and_resume_subprocess(corpus, tmp_path):
    "SIGKILL a pretraining process right after its first checkpoint; resuming trains epochs 2..n only"
    out = tmp_path/'killed'
    code = _CHILD.format(c=str(corpus[0]), o=str(out), v=str(corpus[1]), kw=SMALL)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    proc = subprocess.Popen([sys.executable, '-c', code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ck1, t0 = out/'checkpoints'/'epoch_001.pth', time.time()
    try:
        while not ck1.exists():
            assert proc.poll() is None, f"the pretraining process ended early: {proc.stderr.read().decode()[-2000:]}"
            assert time.time() - t0 < 300, "no checkpoint after 300 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL); proc.wait(); proc.stderr.close()
    assert [f.name for f in checkpoints(out/'checkpoints')] == ['epoch_001.pth']
    assert not list((out/'checkpoints').glob('.*.part'))   # the file appeared complete, by rename
    assert load_checkpoint(out/'checkpoints')['epoch'] == 1
    (out/'checkpoints'/'.epoch_002.pth.x1y2.part').write_bytes(b'half a file')   # as if killed in the middle of a write
    cnt = _CountEpochs()
    res = _run(corpus, out, cbs=[cnt])
    assert cnt.trained == [1, 2] and 1 + len(cnt.trained) == SMALL['n_epoch']   # epochs 2 and 3 here, epoch 1 in the killed process
    assert [h['epoch'] for h in res.metrics['epochs']] == [1, 2, 3] and [h['run'] for h in res.metrics['epochs']] == [0, 1, 1]
    assert (out/'bundle'/'weights.pth').exists() and (out/'metrics.json').exists()
    assert not list((out/'checkpoints').glob('.*.part'))

def test_stage2_loads_bundle(corpus, tmp_path, capsys):
    "pretrain tiny -> lm_learner on another corpus with pretrained=bundle -> the remap report shows shared tokens"
    from ulmfit_ext.data import lm_dls
    from ulmfit_ext.learner import lm_learner
    res = _run(corpus, tmp_path/'run', n_epoch=1)
    other = tmp_path/'task.txt'
    other.write_text('\n\n'.join(f"the cat sees a new word{i % 7} on the road ." for i in range(60)))
    dls = lm_dls(other, bs=4, bptt=8, min_freq=1, split='para', seed=0, **FAST)
    learn = lm_learner(dls, config=SMALL['config'], pretrained=res.bundle)
    assert re.search(r"Vocabulary remap: \d+ of \d+ tokens", capsys.readouterr().out)
    enc = learn.model[0].encoder.weight.detach()
    src = dict(zip(res.learn.dls.vocab, res.learn.model[0].encoder.weight.detach()))
    shared = [i for i, t in enumerate(learn.dls.vocab) if t in src and not t.startswith('xxfake')]
    assert 'cat' in [learn.dls.vocab[i] for i in shared] and 'word3' not in src
    assert all(torch.equal(enc[i], src[learn.dls.vocab[i]]) for i in shared)

# --- SentencePiece and variable-length BPTT ----------------------------------------------------

SPM = dict(tokenizer='spm', vocab_sz=64, var_bptt=True, n_workers=0, progress=False)

def _run_spm(corpus, out, **kw): return pretrain_lm(corpus[0], out, valid=corpus[1], **{**SMALL, **SPM, **kw})

def test_spm_var_bptt_resume_matches_uninterrupted(corpus, tmp_path):
    "SentencePiece Stage 1 with variable-length BPTT: the vocabulary is the model's, the bundle carries it, and a resumed run draws the same lengths"
    from ulmfit_ext.bundle import load_bundle
    from ulmfit_ext.subword import spm_vocab
    from ulmfit_ext.data import VarLenLMDataLoader
    ref = _run_spm(corpus, tmp_path/'ref')
    assert isinstance(ref.learn.dls.train, VarLenLMDataLoader) and not ref.learn.dls.valid.variable
    b = load_bundle(ref.bundle)
    assert b.tokenizer_spec['tokenizer'] == 'SpmTokenizer' and (ref.bundle/'spm.model').is_file()
    assert b.vocab == spm_vocab(ref.bundle/'spm.model') == list(ref.learn.dls.vocab)
    assert json.loads((tmp_path/'ref'/'settings.json').read_text())['var_bptt'] is True
    with pytest.raises(_Stop): _run_spm(corpus, tmp_path/'cut', cbs=[_StopAfter(0)])
    res = _run_spm(corpus, tmp_path/'cut')
    lr_ref, lr_cut = (load_checkpoint(tmp_path/d/'checkpoints')['lrs'] for d in ('ref', 'cut'))
    assert len(lr_ref) == len(lr_cut) and np.allclose(lr_ref, lr_cut)   # same number of batches: same lengths drawn
    sd_ref, sd_cut = ref.learn.model.state_dict(), res.learn.model.state_dict()
    assert all(torch.allclose(sd_ref[k], sd_cut[k], atol=1e-5) for k in sd_ref)

def test_spm_stage1_to_task_needs_no_remap(corpus, tmp_path, capsys):
    "The task's data built from the SentencePiece bundle have its vocabulary: every embedding row loads as pretrained, and the classifier shares it"
    import pandas as pd
    from ulmfit_ext.bundle import load_bundle
    from ulmfit_ext.data import lm_dls, clas_dls, _token_ids
    from ulmfit_ext.learner import lm_learner, clas_learner
    from ulmfit_ext.subword import SpmTokenizer
    res = _run_spm(corpus, tmp_path/'run', n_epoch=1, var_bptt=False)
    df = pd.DataFrame({'text': [f"the old man finds {w} and my sister hears it ." for w in ['a tree', 'the moon', 'zebras']*20], 'label': ['a', 'b', 'c']*20})
    dls = lm_dls(df, vocab=load_bundle(res.bundle), bs=4, bptt=8, seed=0, n_workers=0, progress=False)   # no `tok=`: the bundle's
    tid = _token_ids(dls)
    assert isinstance(tid.tok, SpmTokenizer) and Path(tid.tok.sp_model) == res.bundle/'spm.model'
    assert list(dls.vocab) == list(res.learn.dls.vocab)
    capsys.readouterr()
    learn = lm_learner(dls, config=SMALL['config'], pretrained=res.bundle)
    assert 'nothing remapped' in capsys.readouterr().out
    assert torch.equal(learn.model[0].encoder.weight, res.learn.model[0].encoder.weight)
    dc = clas_dls(df, vocab=dls, bs=8, bptt=8, seed=0, n_workers=0, progress=False)
    assert list(dc.vocab[0]) == list(dls.vocab)
    clas = clas_learner(dc, encoder=learn, config=SMALL['config'], bptt=8)
    assert torch.equal(clas.model[0].module.encoder.weight, learn.model[0].encoder.weight)
    # a word-tokenized task vocabulary would be meaningless on pieces: refused with the fix
    words = lm_dls(df, bs=4, bptt=8, seed=0, min_freq=1, **FAST)   # FAST: a space tokenizer
    with pytest.raises(UlmfitError, match=r"vocab=load_bundle\("): lm_learner(words, config=SMALL['config'], pretrained=res.bundle)

def test_spm_settings_refused(corpus, tmp_path):
    with pytest.raises(UlmfitError, match="'spacy' .* or 'spm'"): _run(corpus, tmp_path/'x', tokenizer='wordpiece')
    with pytest.raises(UlmfitError, match="with `tokenizer='spm'`"): _run(corpus, tmp_path/'x', vocab_sz=100)
    with pytest.raises(UlmfitError, match="not both"): _run(corpus, tmp_path/'x', tokenizer='spm')   # FAST passes tok=
    assert not (tmp_path/'x').exists()

# --- find_stage1 -------------------------------------------------------------------------------

@pytest.fixture
def no_outside(tmp_path, monkeypatch):
    "No shared data, no corpus variable, no fastai weights: every branch must be switched on by the test"
    monkeypatch.setenv('ULMFIT_DATA', str(tmp_path/'no_data'))
    monkeypatch.delenv('ULMFIT_CORPUS', raising=False)
    monkeypatch.setattr(s1, 'fastai_path', lambda k: tmp_path/'fastai'/k)
    def offline(*a, **k): raise UlmfitError("Could not download fastai's WikiText-103 weights (URLError: offline)")
    monkeypatch.setattr(s1, 'wt103_files', offline)
    monkeypatch.setattr('ulmfit_ext.bundle.shipped_models', {})   # as an installation without the package's own LMs

def _fake_bundle(folder):
    folder.mkdir(parents=True)
    (folder/'config.json').write_text(json.dumps({'format': 'ulmfit_ext.bundle'}))
    return folder

def test_find_stage1_none(no_outside, capsys):
    r = find_stage1()
    assert r.kind == 'none' and r.path is None and len(r.skipped) == 6 and 'no `corpus=` given' in r.skipped
    out = capsys.readouterr().out
    assert "task's own text" in out and 'skipped: no `bundle=` given' in out and 'WikiText-103 weights are not available' in out

def test_find_stage1_named_bundle(no_outside, tmp_path):
    b = _fake_bundle(tmp_path/'run'/'bundle')
    r = find_stage1(bundle=tmp_path/'run', verbose=False)
    assert r.kind == 'bundle' and r.path == b and r.skipped == []
    with pytest.raises(UlmfitError, match='is not a ulmfit_ext bundle'): find_stage1(bundle=tmp_path/'nope')

def test_find_stage1_cache(no_outside, tmp_path):
    _fake_bundle(tmp_path/'cache'/'stage1'/'fwd'/'bundle')   # the cache folder the autouse `_env` fixture set
    r = find_stage1(verbose=False)
    assert r.kind == 'cache' and r.path.name == 'bundle'
    assert find_stage1(cache=False, verbose=False).kind == 'none'
    assert find_stage1(backwards=True, verbose=False).kind == 'none'   # the backward model has its own key

def test_find_stage1_wt103(no_outside, tmp_path, monkeypatch):
    d = tmp_path/'dl'/'wt103-fwd'; d.mkdir(parents=True)
    calls = []
    def fake(backwards=False, path=None, timeout=5.):
        calls.append((backwards, path, timeout))
        return d/'lstm_fwd.pth', d/'itos_wt103.pkl'
    monkeypatch.setattr(s1, 'wt103_files', fake)
    r = find_stage1(timeout=0.5, verbose=False)
    assert r.kind == 'wt103' and r.path == d and calls == [(False, None, 0.5)]
    r = find_stage1(allow_download=False, verbose=False)   # nothing in fastai's folder and no download: skipped
    assert r.kind == 'none' and 'downloading is off' in r.skipped[4] and len(calls) == 1

def test_find_stage1_corpus(no_outside, tmp_path, monkeypatch, corpus):
    r = find_stage1(corpus=corpus[0], verbose=False)
    assert r.kind == 'corpus' and r.path == corpus[0]
    with pytest.raises(UlmfitError, match='does not exist'): find_stage1(corpus=tmp_path/'missing.txt')
    monkeypatch.setenv('ULMFIT_CORPUS', str(corpus[1]))
    assert find_stage1(verbose=False).path == corpus[1]
    monkeypatch.setenv('ULMFIT_CORPUS', str(tmp_path/'gone'))
    assert 'names a missing path' in find_stage1(verbose=False).skipped[-1]
    monkeypatch.delenv('ULMFIT_CORPUS')
    g = tmp_path/'no_data'/'gutenberg_books'; g.mkdir(parents=True)
    assert find_stage1(verbose=False).path == g

# --- real data (SLOW=1) ------------------------------------------------------------------------

@pytest.mark.slow
def test_pretrain_tiny_gutenberg(shared_dataset, tmp_path):
    "Pretrain 'tiny' on a slice of the Gutenberg books; perplexity on WikiText-2 valid"
    from fastai.text.all import defaults
    books, wt2 = shared_dataset('gutenberg_books'), shared_dataset('wikitext2')
    t0 = time.time()
    res = pretrain_lm(books/'gutenberg_ece451.tar.xz', tmp_path/'gut', preset='tiny', valid=wt2/'valid.txt',
                      valid_rules=[fix_wikitext, *defaults.text_proc_rules], n_workers=1)
    print(res, f'{time.time()-t0:.0f} s', res.metrics['epochs'], res.metrics['data'])
    ppl = [h['perplexity'] for h in res.metrics['epochs']]
    assert ppl[-1] < ppl[0] and ppl[-1] < 1000

# --- replace, never destroy (issue 13, item 1) -------------------------------------------------
import hashlib

def _tree(d):
    "sha256 of every file below `d` (the hidden replacement folder aside)"
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(d).rglob('*'))
            if p.is_file() and '.next-run' not in p.relative_to(d).parts}

@pytest.fixture
def finished(corpus, tmp_path):
    out = tmp_path/'run'
    _run(corpus, out, n_epoch=2)
    return out

@pytest.mark.parametrize('bad,msg', [(dict(lr=0), '`lr`=0 is out of range'), (dict(lr=-1), '`lr`=-1 is out of range'), (dict(bs=0), '`bs`=0'),
                                      (dict(bptt=0), '`bptt`=0'), (dict(max_vocab=0), '`max_vocab`=0'), (dict(n_epoch=0), '`n_epoch`=0'),
                                      (dict(drop_mult=-1), '`drop_mult`=-1'), (dict(config=dict(emb_sz=-5)), '`emb_sz`=-5'),
                                      (dict(config=dict(n_layers=0)), '`n_layers`=0'), (dict(clip=0), '`clip`=0'), (dict(seed=-1), '`seed`=-1'),
                                      (dict(lr=float('nan')), '`lr`=nan is not a number'), (dict(min_freq=10**6), "only fastai's special tokens"),
                                      (dict(bs=10**5), 'too few for `bs`=100000')])
def test_overwrite_with_bad_value_keeps_finished_run(corpus, finished, bad, msg):
    "Items 1, 3, 7, 9: a bad value is refused with its name; the finished run is byte-identical afterwards"
    before = _tree(finished)
    with pytest.raises(UlmfitError, match=msg): _run(corpus, finished, overwrite=True, **bad)
    assert _tree(finished) == before

def test_interrupted_replacement_keeps_old_run_and_resumes(corpus, finished):
    "A replacement run that stops after one epoch leaves the old results untouched; the same call resumes it and swaps it in"
    before = _tree(finished)
    with pytest.raises(_Stop): _run(corpus, finished, overwrite=True, lr=1e-2, n_epoch=2, cbs=[_StopAfter(0)])
    assert _tree(finished) == before and checkpoints(finished/'.next-run'/'checkpoints')
    with pytest.raises(UlmfitError, match='interrupted replacement run waits in .next-run'): _run(corpus, finished, n_epoch=2)
    cnt = _CountEpochs()
    res = _run(corpus, finished, overwrite=True, lr=1e-2, n_epoch=2, cbs=[cnt])
    assert cnt.trained == [1] and [h['run'] for h in res.metrics['epochs']] == [0, 1]
    assert json.loads((finished/'settings.json').read_text())['lr'] == 1e-2 and res.metrics['settings']['lr'] == 1e-2
    assert sorted(p.name for p in finished.iterdir()) == ['bundle', 'checkpoints', 'loss.png', 'metrics.json', 'settings.json']
    assert load_checkpoint(finished/'checkpoints')['epoch'] == 2
    from ulmfit_ext.bundle import load_bundle
    assert load_bundle(finished/'bundle').provenance['metrics']['perplexity'] == res.perplexity

def test_publication_killed_halfway_is_finished_next_time(corpus, finished, monkeypatch):
    "A process killed between the moves that swap a replacement in: the next call completes them, so one whole run is there"
    real, orig = pt._publish_run, os.replace
    def half(nxt, out):
        n = [0]
        def limited(a, b):
            n[0] += 1
            if n[0] > 3: raise KeyboardInterrupt('killed while publishing')
            orig(a, b)
        monkeypatch.setattr(os, 'replace', limited)
        try: real(nxt, out)
        finally: monkeypatch.setattr(os, 'replace', orig)
    monkeypatch.setattr(pt, '_publish_run', half)
    with pytest.raises(KeyboardInterrupt): _run(corpus, finished, overwrite=True, lr=1e-2, n_epoch=1)
    monkeypatch.setattr(pt, '_publish_run', real)
    assert not (finished/'metrics.json').exists()   # half swapped: neither run is complete in `out` itself
    with pytest.raises(UlmfitError, match='holds a finished pretraining run'): _run(corpus, finished, n_epoch=1)   # recovered first
    m = json.loads((finished/'metrics.json').read_text())
    assert m['settings']['lr'] == 1e-2 and m['n_epoch'] == 1 and json.loads((finished/'settings.json').read_text())['lr'] == 1e-2
    assert sorted(p.name for p in finished.iterdir()) == ['bundle', 'checkpoints', 'loss.png', 'metrics.json', 'settings.json']

def test_kill_during_replacement_keeps_old_run(corpus, finished):
    "kill -9 of an `overwrite=True` run after its first checkpoint: the finished run is byte-identical; the replacement resumes"
    before = _tree(finished)
    code = _CHILD.format(c=str(corpus[0]), o=str(finished), v=str(corpus[1]), kw={**SMALL, 'overwrite': True, 'lr': 1e-2})
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    proc = subprocess.Popen([sys.executable, '-c', code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ck1, t0 = finished/'.next-run'/'checkpoints'/'epoch_001.pth', time.time()
    try:
        while not ck1.exists():
            assert proc.poll() is None, f"the pretraining process ended early: {proc.stderr.read().decode()[-2000:]}"
            assert time.time() - t0 < 300, "no checkpoint after 300 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL); proc.wait(); proc.stderr.close()
    assert _tree(finished) == before
    cnt = _CountEpochs()
    res = _run(corpus, finished, overwrite=True, lr=1e-2, cbs=[cnt])
    assert cnt.trained == [1, 2] and res.metrics['settings']['lr'] == 1e-2 and not (finished/'.next-run').exists()

def test_overwrite_with_nothing_to_keep_trains_in_place(corpus, tmp_path):
    out = tmp_path/'fresh'
    res = _run(corpus, out, n_epoch=1, overwrite=True)
    assert res.metrics['n_epoch'] == 1 and not (out/'.next-run').exists()

def test_out_is_a_file(corpus, tmp_path):
    (tmp_path/'f').write_text('mine')
    with pytest.raises(UlmfitError, match='is a file, not a folder'): _run(corpus, tmp_path/'f')
    assert (tmp_path/'f').read_text() == 'mine'

def test_deterministic_pretraining(corpus, tmp_path):
    "What to build 5: two `deterministic=True` runs give identical metrics and weights"
    a = _run(corpus, tmp_path/'a', n_epoch=1, deterministic=True)
    b = _run(corpus, tmp_path/'b', n_epoch=1, deterministic=True)
    assert a.metrics['epochs'][0]['valid_loss'] == b.metrics['epochs'][0]['valid_loss']
    assert load_checkpoint(tmp_path/'a'/'checkpoints')['losses'] == load_checkpoint(tmp_path/'b'/'checkpoints')['losses']
    assert all(torch.equal(v, b.learn.model.state_dict()[k]) for k, v in a.learn.model.state_dict().items())
    assert not torch.are_deterministic_algorithms_enabled()   # the switch is put back

def test_failure_before_first_epoch_leaves_no_trace(corpus, tmp_path):
    "A run refused after `out` was prepared (here: a binary corpus) removes what it wrote: no stray settings.json or folder"
    (tmp_path/'bin.txt').write_bytes(bytes(range(256)) * 30)
    with pytest.raises(UlmfitError, match='bin.txt looks like a binary file'): pretrain_lm(tmp_path/'bin.txt', tmp_path/'new', **{**SMALL, **FAST})
    assert not (tmp_path/'new').exists()
    _run(corpus, tmp_path/'old', n_epoch=1)
    before = _tree(tmp_path/'old')
    with pytest.raises(UlmfitError, match='looks like a binary file'): pretrain_lm(tmp_path/'bin.txt', tmp_path/'old', overwrite=True, **{**SMALL, **FAST})
    assert _tree(tmp_path/'old') == before and not (tmp_path/'old'/'.next-run').exists()
