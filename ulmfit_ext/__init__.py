__version__ = "0.1.0"
"Paper-faithful ULMFiT for fastai. The learner factories are imported on first use, so `import ulmfit_ext` stays fast."

_lazy = {n: 'learner' for n in ('lm_learner', 'clas_learner', 'finetune_lm', 'train_classifier')}

def __getattr__(name):
    "Import `lm_learner` and friends from `ulmfit_ext.learner` when first asked for"
    if name not in _lazy: raise AttributeError(f"module 'ulmfit_ext' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f'.{_lazy[name]}', __name__), name)

def __dir__(): return sorted([*globals(), *_lazy])
