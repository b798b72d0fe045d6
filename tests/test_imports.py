"Every exported module imports in a fresh interpreter, and `__all__` names resolve (run under both fastai versions)."
import importlib, pkgutil, subprocess, sys
import pytest
import ulmfit_ext

MODULES = sorted(m.name for m in pkgutil.iter_modules(ulmfit_ext.__path__) if not m.name.startswith('_'))

@pytest.mark.parametrize('name', MODULES)
def test_module_imports_fresh(name):
    code = f"import ulmfit_ext.{name} as m; missing = [n for n in getattr(m, '__all__', []) if not hasattr(m, n)]; assert not missing, missing"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]

def test_lm_learner_from_top_level():
    r = subprocess.run([sys.executable, '-c', 'from ulmfit_ext import lm_learner; print(lm_learner.__module__)'], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == 'ulmfit_ext.learner', r.stderr[-2000:]
