"The package's own Stage-1 pair (`ulmfit_ext/models/ulmfit-en`): found with no network and no `../shared`, digest-checked, usable by name"
import json, shutil
from pathlib import Path
import pandas as pd, pytest, torch
import ulmfit_ext.bundle as ubundle
from ulmfit_ext.core import UlmfitError
from ulmfit_ext.bundle import shipped_models, shipped_bundle, load_bundle, models_dir, verify_bundle
from ulmfit_ext.data import lm_dls
from ulmfit_ext.learner import lm_learner
from ulmfit_ext.test_utils import toy_df

NAME = 'ulmfit-en'

def test_the_pair_is_installed_and_verified():
    assert NAME in shipped_models and set(shipped_models[NAME]) == {'fwd', 'bwd'}
    fwd, bwd = shipped_bundle(NAME), shipped_bundle(NAME, backwards=True)
    assert fwd.parent == bwd.parent == models_dir()/NAME and (models_dir()/NAME/'MODEL_CARD.md').exists()
    bf, bb = load_bundle(fwd), load_bundle(bwd)
    assert (bf.config.get('backwards'), bb.config.get('backwards')) == (False, True)
    assert bf.vocab == bb.vocab and (fwd/'spm.model').read_bytes() == (bwd/'spm.model').read_bytes()   # one vocabulary: the pair ensembles
    assert sum((fwd/f).stat().st_size + (bwd/f).stat().st_size for f in ('weights.pth',)) < 25e6

def test_lm_learner_by_name_loads_the_shipped_weights():
    b = load_bundle(shipped_bundle(NAME))
    dls = lm_dls(toy_df(60), vocab=b, bs=8, bptt=10, n_workers=0, progress=False, cache=False)   # the shipped tokenizer: no remap
    assert list(dls.vocab) == list(b.vocab)
    learn = lm_learner(dls, pretrained=NAME)
    emb = learn.model[0].encoder.weight.detach()
    assert emb.dtype == torch.float32   # stored as float16, loaded as float32
    assert torch.allclose(emb, b.state_dict['0.encoder.weight'].float())
    assert learn.model[0].n_hid == b.config['awd_lstm']['n_hid']

def test_an_edited_shipped_model_is_refused(tmp_path, monkeypatch):
    shutil.copytree(models_dir()/NAME, tmp_path/NAME)
    w = tmp_path/NAME/'fwd'/'weights.pth'
    w.write_bytes(w.read_bytes()[:-8] + b'\0' * 8)
    monkeypatch.setattr(ubundle, 'models_dir', lambda: tmp_path)
    with pytest.raises(UlmfitError): shipped_bundle(NAME)
    shipped_bundle(NAME, backwards=True)   # the untouched twin still loads

def test_find_stage1_prefers_the_shipped_pair(monkeypatch, tmp_path):
    from ulmfit_ext.stage1 import find_stage1
    monkeypatch.setenv('ULMFIT_CACHE', str(tmp_path))
    s = find_stage1(allow_download=False)
    assert s.kind == 'shipped' and s.path == shipped_bundle(NAME)
    assert find_stage1(backwards=True, allow_download=False).path == shipped_bundle(NAME, backwards=True)

def test_cli_finetune_lm_starts_from_the_shipped_lm_by_default(tmp_path, capsys):
    from ulmfit_ext.cli import main
    toy_df(60)[['text', 'label']].to_csv(tmp_path/'toy.csv', index=False)
    try: main(['finetune-lm', str(tmp_path/'toy.csv'), '--out', str(tmp_path/'lm'), '--epochs', '1', '--bs', '8', '--bptt', '10'])
    except SystemExit as e: assert e.code in (0, None), capsys.readouterr()
    m = json.loads((tmp_path/'lm'/'metrics.json').read_text())
    assert Path(m['pretrained']) == shipped_bundle(NAME), m
    with pytest.raises((UlmfitError, SystemExit)) as e: main(['finetune-lm', str(tmp_path/'toy.csv'), '--out', str(tmp_path/'lm2'), '--emb-sz', '16'])
    assert '--pretrained none' in str(e.value) + capsys.readouterr().err
