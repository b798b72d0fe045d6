"Tests of `ulmfit_ext.core` that run in both environments (the notebook tests run only in the development one)."
import os, subprocess, sys
from pathlib import Path
import pytest
import ulmfit_ext
from ulmfit_ext.core import *

def test_version_matches_settings():
    "The package version is the one in settings.ini"
    ini = (Path(__file__).parent.parent/'settings.ini').read_text()
    assert f"version = {ulmfit_ext.__version__}\n" in ini

def test_import_in_fresh_process():
    "`import ulmfit_ext` succeeds in a new interpreter and reports the installed fastai"
    out = subprocess.run([sys.executable, '-c', 'import ulmfit_ext, fastai; print(fastai.__version__)'], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith('2.8')

def test_check_range_messages():
    assert check_range('factor', 2.6, lo=1, lo_open=True) == 2.6
    with pytest.raises(UlmfitError, match=r'`factor`=1 is out of range: it must lie in \(1, inf\]'):
        check_range('factor', 1, lo=1, lo_open=True)

def test_atomic_path_keeps_old_file_on_error(tmp_path):
    f = tmp_path/'weights.pth'
    f.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_path(f) as tmp:
            tmp.write_text('new, half written'); raise RuntimeError('crash')
    assert f.read_text() == 'old' and sorted(p.name for p in tmp_path.iterdir()) == ['weights.pth']

def test_atomic_path_refuses_overwrite_when_asked(tmp_path):
    f = tmp_path/'metrics.json'; f.write_text('{}')
    with pytest.raises(UlmfitError, match='overwrite=True'):
        with atomic_path(f, overwrite=False) as tmp: tmp.write_text('x')
    assert f.read_text() == '{}'

def test_cache_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv('ULMFIT_CACHE', str(tmp_path/'c'))
    assert cache_dir('a', 'b') == tmp_path/'c'/'a'/'b' and (tmp_path/'c'/'a'/'b').is_dir()

def test_sha256_and_versions(tmp_path):
    import hashlib
    (tmp_path/'f').write_bytes(b'x'*3000)
    assert sha256_file(tmp_path/'f', chunk=1000) == hashlib.sha256(b'x'*3000).hexdigest()
    v = versions()
    assert v['fastcore'] is not None and v['ulmfit_ext'] == ulmfit_ext.__version__

# ---------------------------------------------------------------- argument checks (issue 13)
@pytest.mark.parametrize('val', [0, -3, 2.0, True, '8', None, float('nan')])
def test_check_int_refuses(val):
    with pytest.raises(UlmfitError, match='`bs`='): check_int('bs', val, lo=1)

def test_check_range_refuses_nan_and_strings():
    for v in (float('nan'), '0.1', None, [0.1]):
        with pytest.raises(UlmfitError, match='`lr`=.* is not a number'): check_range('lr', v, 0, lo_open=True)

def test_check_args_table():
    check_args(bs=1, bptt=70, lr=1e-3, seed=None, max_tokens=None, split='line', keep_end='tail')
    with pytest.raises(UlmfitError, match=r"`max_vocab`=9 is out of range: it must lie in \[10, inf\]"): check_args(max_vocab=9)
    with pytest.raises(UlmfitError, match="`split`='paragraph' is not one of 'file', 'para', 'line'. Did you mean 'para'"): check_args(split='paragraph')
    with pytest.raises(UlmfitError, match='`drop_mult`=-1'): check_args(drop_mult=-1)
    with pytest.raises(KeyError): check_args(no_such_argument=1)   # a programming error, not a user's

def test_max_vocab_bound_is_fastais_special_tokens():
    from fastai.text.all import defaults
    assert ARG_SPECS['max_vocab']['lo'] == len(defaults.text_spec_tok) + 1

# ---------------------------------------------------------------- replace, never destroy (issue 13, items 1, 5, 14)
def _two_threads(fn):
    "Run `fn(i, barrier)` in two threads that meet at the barrier; return what each returned or raised"
    import threading
    gate, res = threading.Barrier(2, timeout=20), [None, None]
    def run(i):
        try: res[i] = fn(i, gate)
        except Exception as e: res[i] = e
    ts = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in ts: t.start()
    for t in ts: t.join(30)
    return res

def test_two_writers_of_one_file(tmp_path):
    "Both pass the start-up check; exactly one publishes, the other is refused and the winner's file stays"
    f = tmp_path/'out.csv'
    def write(i, gate):
        with atomic_path(f, overwrite=False) as t: t.write_text(f'writer {i}'); gate.wait()
        return i
    res = _two_threads(write)
    won = [r for r in res if isinstance(r, int)]
    assert len(won) == 1 and isinstance(res[1-won[0]], UlmfitError) and 'already exists' in str(res[1-won[0]])
    assert f.read_text() == f'writer {won[0]}' and [p.name for p in tmp_path.iterdir()] == ['out.csv']

def test_two_writers_of_one_folder(tmp_path):
    d = tmp_path/'bundle'
    def write(i, gate):
        with atomic_dir(d) as t: (t/'who').write_text(str(i)); gate.wait()
        return i
    res = _two_threads(write)
    won = [r for r in res if isinstance(r, int)]
    assert len(won) == 1 and isinstance(res[1-won[0]], UlmfitError)
    assert (d/'who').read_text() == str(won[0]) and [p.name for p in tmp_path.iterdir()] == ['bundle']

def test_two_writer_processes(tmp_path):
    "The same race between two processes: each waits for a go signal after writing, then publishes"
    code = ("import sys, time; from pathlib import Path; from ulmfit_ext.core import atomic_dir, UlmfitError\n"
            "d, i = Path(sys.argv[1]), sys.argv[2]\n"
            "try:\n"
            "    with atomic_dir(d/'bundle') as t:\n"
            "        (t/'who').write_text(i); (d/f'ready{i}').touch()\n"
            "        while not (d/'go').exists(): time.sleep(0.01)\n"
            "    print('won')\n"
            "except UlmfitError as e: print('refused', e)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    ps = [subprocess.Popen([sys.executable, '-c', code, str(tmp_path), str(i)], stdout=subprocess.PIPE, text=True, env=env) for i in range(2)]
    import time
    t0 = time.time()
    while not all((tmp_path/f'ready{i}').exists() for i in range(2)) and time.time() - t0 < 60: time.sleep(0.02)
    (tmp_path/'go').touch()
    outs = [p.communicate(timeout=60)[0] for p in ps]
    assert sorted(o.split()[0] for o in outs) == ['refused', 'won'], outs
    winner = [i for i, o in enumerate(outs) if o.startswith('won')][0]
    assert (tmp_path/'bundle'/'who').read_text() == str(winner)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]   # the loser cleaned up after itself

def test_overwrite_replaces_folder_only_when_complete(tmp_path):
    d = tmp_path/'bundle'
    with atomic_dir(d) as t: (t/'v').write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_dir(d, overwrite=True) as t: (t/'v').write_text('new, half'); raise RuntimeError('killed')
    assert (d/'v').read_text() == 'old'
    with atomic_dir(d, overwrite=True) as t: (t/'v').write_text('new')
    assert (d/'v').read_text() == 'new' and [p.name for p in tmp_path.iterdir()] == ['bundle']

def test_leftovers_of_dead_writers_cleaned(tmp_path):
    "What a killed writer leaves is removed by the next write of that name; a live writer's temporary files are kept"
    p = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    dead = int(p.stdout)   # that process has ended
    for n in (f'.out.csv.{dead}-abc.part', f'.bundle.{dead}-x_1.part', f'.bundle.old-{dead}-0a1b2c3d'):
        (tmp_path/n).mkdir() if 'bundle' in n else (tmp_path/n).write_text('junk')
    live = tmp_path/f'.bundle.{os.getpid()}-live.part'; live.mkdir()
    legacy = tmp_path/'.bundle.k2j3h4.part'; legacy.mkdir()   # no process id (older versions): removed once an hour old
    with atomic_path(tmp_path/'out.csv') as t: t.write_text('x')
    with atomic_dir(tmp_path/'bundle') as t: (t/'f').write_text('x')
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(['.bundle.k2j3h4.part', live.name, 'bundle', 'out.csv'])
    os.utime(legacy, (0, 0))
    assert clean_leftovers(tmp_path, 'bundle') == [legacy]

def test_publish_fsyncs(tmp_path, monkeypatch):
    "Every file and folder of a published folder is flushed before the rename, and the parent after it"
    import ulmfit_ext.core as core
    seen = []
    monkeypatch.setattr(core, 'fsync', lambda p: seen.append(Path(p).name))
    with atomic_dir(tmp_path/'b') as t: (t/'sub').mkdir(); (t/'sub'/'w.pth').write_text('w'); (t/'c.json').write_text('{}')
    assert {'w.pth', 'sub', 'c.json'} <= set(seen[:-1]) and seen[-1] == tmp_path.name

# ---------------------------------------------------------------- determinism (issue 13, what to build 5)
def test_deterministic_switch_restores_settings():
    import torch
    before = torch.are_deterministic_algorithms_enabled()
    with deterministic(3):
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        a = torch.rand(3)
    with deterministic(3): b = torch.rand(3)
    assert torch.equal(a, b) and torch.are_deterministic_algorithms_enabled() == before
