"""The package's layering (../shared/reference/ARCHITECTURE.md, with the modules its first sketch had since split): a module
imports only modules of its own layer or below, and the imports within a layer have no cycle. Imports are read from the
source (`ast`), those inside functions included, so a lazy import of a higher layer fails here too."""
import ast
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parent.parent/'ulmfit_ext'

# layer -> modules (bottom first); a new module must be placed here
LAYERS = {
    1: 'core test_utils',
    2: 'readers tokens corpus subword data tok_spec splitters',                             # data: corpus, tokens, loaders; layer groups
    3: 'schedules auto tasks distrib weights bundle model_checks reports epoch_checkpoint',  # schedules, automatic choices, weights and bundles
    4: 'learner stage1',                                                                    # the learner factories and recipes; Stage-1 choice
    5: 'inference pair generate serve explain embed transformer transformer_lm pretrain stage_checkpoint',
    6: 'pipeline ensemble',                                                                 # Stages 2 and 3 as one call; the fwd+bwd pair's runs
    7: 'cli cli_base cli_train demo',                                                       # nothing imports these
}
LAYER = {m: k for k, ms in LAYERS.items() for m in ms.split()}

def modules(): return sorted(p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_'))

def imports(mod:str) -> set:
    "The package's modules that `mod` imports anywhere in its source"
    res = set()
    for n in ast.walk(ast.parse((PKG/f'{mod}.py').read_text())):
        if isinstance(n, ast.ImportFrom):
            if n.level == 1: res |= {n.module.split('.')[0]} if n.module else {a.name for a in n.names}
            elif n.module and n.module.startswith('ulmfit_ext.'): res.add(n.module.split('.')[1])
            elif n.module == 'ulmfit_ext': res |= {a.name for a in n.names}
        elif isinstance(n, ast.Import): res |= {a.name.split('.')[1] for a in n.names if a.name.startswith('ulmfit_ext.')}
    return res & set(modules()) - {mod}

def test_every_module_has_a_layer():
    assert set(modules()) - set(LAYER) == set(), "place the new module in LAYERS"
    assert set(LAYER) - set(modules()) == set(), "a module in LAYERS no longer exists"

@pytest.mark.parametrize('mod', modules())
def test_no_import_from_a_higher_layer(mod):
    up = {d: LAYER[d] for d in imports(mod) if LAYER[d] > LAYER[mod]}
    assert not up, f"{mod} (layer {LAYER[mod]}) imports {up}"

def test_no_import_cycle():
    graph = {m: imports(m) for m in modules()}
    done, path = set(), []
    def visit(m):
        if m in path: raise AssertionError(f"import cycle: {' -> '.join(path[path.index(m):] + [m])}")
        if m in done: return
        path.append(m)
        for d in sorted(graph[m]): visit(d)
        path.pop(); done.add(m)
    for m in graph: visit(m)

def test_the_check_finds_an_upward_import(tmp_path, monkeypatch):
    "The check is not vacuous: a layer-1 module that imports the pipeline is caught"
    (tmp_path/'core.py').write_text("def f():\n    from .pipeline import stage2\n")
    (tmp_path/'pipeline.py').write_text("from .core import f\n")
    monkeypatch.setitem(globals(), 'PKG', tmp_path)
    assert imports('core') == {'pipeline'}
    with pytest.raises(AssertionError, match='imports'): test_no_import_from_a_higher_layer('core')
    with pytest.raises(AssertionError, match='import cycle'): test_no_import_cycle()
