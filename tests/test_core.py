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
