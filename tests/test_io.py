"Tests of `ulmfit_ext.weights` (configs, name-based loading, vocabulary remapping, WT103 loading) and `ulmfit_ext.bundle` (bundles) in both environments."
import json, os, pickle, subprocess, sys, time, urllib.error
from pathlib import Path
import pytest, torch
from torch import nn
from fastcore.foundation import L
from fastai.text.all import (AWD_LSTM, awd_lstm_lm_config, awd_lstm_clas_config, get_language_model, get_text_classifier, Tokenizer,
                             TextDataLoaders, text_classifier_learner, language_model_learner)
from ulmfit_ext.core import UlmfitError, sha256_file
import ulmfit_ext.weights as uweights, ulmfit_ext.bundle as ubundle
from ulmfit_ext.bundle import *
from ulmfit_ext.weights import *
from ulmfit_ext.tok_spec import *
from ulmfit_ext.data import dls_info

ROOT = Path(__file__).resolve().parent.parent

def tiny_lm(vocab_sz=50, **kw):
    return get_language_model(AWD_LSTM, vocab_sz, config={**awd_lstm_lm_config, 'emb_sz': 20, 'n_hid': 10, 'n_layers': 2, **kw})

def tiny_clas(vocab_sz=50, n_class=3, **kw):
    return get_text_classifier(AWD_LSTM, vocab_sz, n_class, config={**awd_lstm_clas_config, 'emb_sz': 20, 'n_hid': 10, 'n_layers': 2, **kw})

OLD_VOCAB = [f'w{i}' for i in range(50)]
NEW_VOCAB = OLD_VOCAB[10:] + [f'new{i}' for i in range(12)]   # 40 shared, 12 new

# ---------------------------------------------------------------- configs
def test_infer_config_three_kinds():
    assert infer_config(tiny_lm()) == dict(kind='lm', vocab_sz=50, emb_sz=20, n_hid=10, n_layers=2, bidir=False, tie_weights=True, out_bias=True)
    assert infer_config(tiny_clas(n_class=5).state_dict()) == dict(kind='classifier', vocab_sz=50, emb_sz=20, n_hid=10, n_layers=2, bidir=False, lin_ftrs=[50], n_class=5)
    assert infer_config(tiny_lm()[0].state_dict())['kind'] == 'encoder'
    assert infer_config(tiny_lm(n_layers=3, tie_weights=False, out_bias=False)) == dict(
        kind='lm', vocab_sz=50, emb_sz=20, n_hid=10, n_layers=3, bidir=False, tie_weights=False, out_bias=False)

def test_infer_config_reads_old_raw_keys():
    "Older fastai files keep both `rnns.i.module.weight_hh_l0` and `rnns.i.weight_hh_l0_raw`"
    sd = tiny_lm().state_dict()
    old = {**sd, '0.rnns.0.module.weight_hh_l0': torch.zeros_like(sd['0.rnns.0.weight_hh_l0_raw'])}
    assert infer_config(old) == infer_config(sd)
    assert '0.rnns.0.module.weight_hh_l0' not in normalize_keys({'model': old, 'opt': None})

def test_check_compatible_1150_vs_1152(tmp_path):
    "A checkpoint with 1150 hidden units loaded into a 1152-unit model: the error names the field and the fix, and the fix works"
    cfg = lambda n_hid: {**awd_lstm_lm_config, 'emb_sz': 20, 'n_hid': n_hid, 'n_layers': 2}
    torch.save(get_language_model(AWD_LSTM, 10, config=cfg(1150)).state_dict(), tmp_path/'lm_1150.pth')
    sd = read_weights(tmp_path/'lm_1150.pth')
    with pytest.raises(UlmfitError) as e: load_weights(get_language_model(AWD_LSTM, 10, config=cfg(1152)), sd)
    msg = str(e.value)
    assert "n_hid 1150 in the file, 1152 in the model" in msg
    assert "config=dict(awd_lstm_lm_config, n_hid=1150)" in msg
    assert "emb_sz" not in msg and "n_layers" not in msg   # only the field that disagrees
    fixed = get_language_model(AWD_LSTM, 10, config=dict(awd_lstm_lm_config, emb_sz=20, n_layers=2, n_hid=1150))
    assert not load_weights(fixed, sd).missing
    with pytest.raises(UlmfitError, match=r"config=dict\(n_hid=1150\)"):   # classifier factories merge the config
        check_compatible(dict(kind='classifier', n_hid=1150), dict(kind='classifier', n_hid=1152))

def test_check_compatible_lists_every_field():
    with pytest.raises(UlmfitError) as e:
        check_compatible(dict(kind='lm', vocab_sz=60, n_layers=3, n_hid=8), dict(kind='lm', vocab_sz=50, n_layers=2, n_hid=None))
    msg = str(e.value)
    assert "vocab_sz 60 in the file, 50 in the model" in msg and "n_layers 3 in the file, 2 in the model" in msg
    assert "remap_embeddings" in msg and "n_hid" not in msg   # None is not compared
    assert check_compatible(dict(vocab_sz=60, n_hid=8), dict(vocab_sz=50, n_hid=8), ignore=('vocab_sz',))

# ---------------------------------------------------------------- loading by name
def test_load_weights_by_name_not_position():
    "Key order in the file is irrelevant; old duplicate copies of the hidden weights are ignored in favour of `_raw`"
    src, dst = tiny_lm(), tiny_lm()
    sd = src.state_dict()
    shuffled = {k: sd[k] for k in reversed(list(sd))}
    shuffled['0.rnns.1.module.weight_hh_l0'] = torch.full_like(sd['0.rnns.1.weight_hh_l0_raw'], 7.)   # stale copy, old format
    rep = load_weights(dst, shuffled)
    assert rep.missing == [] and rep.unexpected == []
    for k, v in dst.state_dict().items(): assert torch.equal(v, sd[k]), k

def test_load_weights_refuses_same_shapes_wrong_names():
    "Two LSTM layers with identical shapes but a file whose names do not fit: positional loading would accept it"
    lm = tiny_lm(n_hid=20)   # every layer 20 wide: layer tensors have equal shapes
    sd = {k.replace('rnns.1', 'rnns.9'): v for k, v in lm.state_dict().items()}
    with pytest.raises(UlmfitError, match=r"Parameter names differ between the file and the model. Missing from the file: \['0.rnns.1.weight_hh_l0_raw'"):
        load_weights(tiny_lm(n_hid=20), sd)
    rep = load_weights(tiny_lm(n_hid=20), sd, strict=False)
    assert '0.rnns.1.weight_hh_l0_raw' in rep.missing and '0.rnns.9.weight_hh_l0_raw' in rep.unexpected

def test_load_encoder_weights_across_kinds():
    lm, clas = tiny_lm(), tiny_clas()
    load_encoder_weights(clas, lm.state_dict())
    assert torch.equal(clas[0].module.rnns[1].weight_hh_l0_raw, lm[0].rnns[1].weight_hh_l0_raw)
    bare = tiny_lm()[0]
    load_encoder_weights(bare, clas.state_dict())
    assert torch.equal(bare.encoder.weight, lm[0].encoder.weight)
    with pytest.raises(UlmfitError, match="Expected an AWD-LSTM"): encoder_of(nn.Linear(2, 2))
    with pytest.raises(UlmfitError, match="the file holds a classifier but the model is a language model: load the shared encoder with `load_encoder_weights`"):
        load_weights(tiny_lm(), clas.state_dict())

# ---------------------------------------------------------------- remapping
def test_remap_embeddings_rows_and_report():
    src = tiny_lm(50)
    with torch.no_grad(): src[1].decoder.bias.uniform_(-1, 1)
    sd = src.state_dict()
    new, rep = remap_embeddings(sd, OLD_VOCAB, NEW_VOCAB)
    assert (rep.n_source, rep.n_target, rep.n_shared, rep.n_new) == (50, 52, 40, 12)
    assert rep.new_tokens[:3] == ['new0', 'new1', 'new2']
    assert "40 of 52 tokens (76.9%)" in repr(rep) and "12 new tokens" in repr(rep) and "'new0'" in repr(rep)
    E, b = sd['0.encoder.weight'], sd['1.decoder.bias']
    for key in ('0.encoder.weight', '0.encoder_dp.emb.weight', '1.decoder.weight'):
        assert new[key].shape == (52, 20)
        assert torch.equal(new[key][NEW_VOCAB.index('w33')], E[33])
        assert torch.allclose(new[key][NEW_VOCAB.index('new5')], E.mean(0))
    assert torch.equal(new['1.decoder.bias'][0], b[10]) and torch.allclose(new['1.decoder.bias'][-1], b.mean())
    assert sd['0.encoder.weight'].shape == (50, 20)   # input untouched

def test_remap_untied_decoder_uses_its_own_rows():
    src = tiny_lm(50, tie_weights=False)
    new, _ = remap_embeddings(src.state_dict(), OLD_VOCAB, NEW_VOCAB)
    D = src[1].decoder.weight
    assert torch.equal(new['1.decoder.weight'][0], D[10]) and torch.allclose(new['1.decoder.weight'][-1], D.mean(0))
    assert not torch.equal(new['1.decoder.weight'], new['0.encoder.weight'])

def test_remap_wrong_vocab_file():
    with pytest.raises(UlmfitError, match="49 tokens but the embedding has 50 rows"):
        remap_embeddings(tiny_lm(50).state_dict(), OLD_VOCAB[:-1], NEW_VOCAB)

# ---------------------------------------------------------------- WT103-format files
@pytest.fixture
def fake_wt103(tmp_path):
    "A fake fastai-format pair: `lstm_fwd.pth` (torch.save of a state dict) and `itos_wt103.pkl` (pickled list)"
    torch.manual_seed(0)
    src = tiny_lm(50)
    with torch.no_grad(): src[1].decoder.bias.uniform_(-1, 1)
    d = tmp_path/'wt103-fwd'; d.mkdir()
    torch.save(src.state_dict(), d/'lstm_fwd.pth')
    with open(d/'itos_wt103.pkl', 'wb') as f: pickle.dump(OLD_VOCAB, f)
    return d, src

def test_load_pretrained_lm_into_new_vocab(fake_wt103, capsys):
    d, src = fake_wt103
    dst = tiny_lm(len(NEW_VOCAB))
    rep = load_pretrained_lm(dst, vocab=NEW_VOCAB, path=d)
    assert (rep.n_shared, rep.n_new) == (40, 12)
    assert "40 of 52 tokens" in capsys.readouterr().out
    i_shared, i_new = NEW_VOCAB.index('w20'), NEW_VOCAB.index('new3')
    assert torch.equal(dst[0].encoder.weight[i_shared], src[0].encoder.weight[20])
    assert torch.allclose(dst[0].encoder.weight[i_new], src[0].encoder.weight.mean(0))
    assert torch.allclose(dst[1].decoder.bias[i_new], src[1].decoder.bias.mean())
    assert dst[1].decoder.weight is dst[0].encoder.weight   # still tied
    assert torch.equal(dst[0].rnns[0].module.weight_ih_l0, src[0].rnns[0].module.weight_ih_l0)

def test_load_pretrained_lm_classifier_gets_encoder(fake_wt103):
    d, src = fake_wt103
    clas = tiny_clas(len(NEW_VOCAB))
    load_pretrained_lm(clas, vocab=NEW_VOCAB, path=d, verbose=False)
    assert torch.equal(clas[0].module.rnns[1].weight_hh_l0_raw, src[0].rnns[1].weight_hh_l0_raw)
    assert torch.equal(clas[0].module.encoder.weight[0], src[0].encoder.weight[10])

def test_load_pretrained_lm_architecture_mismatch(fake_wt103):
    d, _ = fake_wt103
    with pytest.raises(UlmfitError, match="n_hid 10 in .*lstm_fwd.pth, 12 in the model"):
        load_pretrained_lm(tiny_lm(len(NEW_VOCAB), n_hid=12), vocab=NEW_VOCAB, path=d, verbose=False)

@pytest.fixture
def fastai_home(tmp_path, monkeypatch):
    "Point fastai's config (and so its model folder) at a temporary FASTAI_HOME; fastai caches the config, so clear it"
    from fastai.data.external import fastai_cfg
    monkeypatch.setenv('FASTAI_HOME', str(tmp_path/'fastai_home'))
    fastai_cfg.cache_clear()
    yield tmp_path/'fastai_home'
    fastai_cfg.cache_clear()

def test_wt103_offline_gives_up_fast(fastai_home, monkeypatch):
    "No network: a clear message saying where to put the two files, within seconds"
    def _offline(*a, **k): raise urllib.error.URLError('network is unreachable')
    monkeypatch.setattr(uweights.urllib.request, 'urlopen', _offline)
    t = time.time()
    with pytest.raises(UlmfitError) as e: load_pretrained_lm(tiny_lm(len(NEW_VOCAB)), vocab=NEW_VOCAB)
    assert time.time() - t < 5
    msg = str(e.value)
    assert "lstm_fwd.pth" in msg and "itos_wt103.pkl" in msg and str(fastai_home/'models'/'wt103-fwd') in msg and "path=" in msg
    with pytest.raises(UlmfitError, match="lstm_bwd.pth"): wt103_files(backwards=True)

def test_wt103_found_in_fastai_model_folder(fake_wt103, fastai_home, monkeypatch):
    "Files already in fastai's model folder are used without touching the network"
    d, _ = fake_wt103
    (fastai_home/'models').mkdir(parents=True)
    d.rename(fastai_home/'models'/'wt103-fwd')
    monkeypatch.setattr(uweights.urllib.request, 'urlopen', lambda *a, **k: pytest.fail('network used'))
    assert [p.name for p in wt103_files()] == ['lstm_fwd.pth', 'itos_wt103.pkl']

# ---------------------------------------------------------------- pickles
class _Evil:
    def __init__(self, target): self.target = target
    def __reduce__(self): return (Path.touch, (Path(self.target),))

def test_read_itos_never_runs_code(tmp_path):
    f = tmp_path/'itos.pkl'
    with open(f, 'wb') as fh: pickle.dump(['xxunk', _Evil(tmp_path/'pwned')], fh)
    with pytest.raises(UlmfitError, match="Unpickling it could run arbitrary code; if you trust the file pass `allow_pickle=True`"):
        read_itos(f)
    assert not (tmp_path/'pwned').exists()

def test_load_legacy_needs_opt_in(tmp_path):
    f = tmp_path/'export.pkl'
    with open(f, 'wb') as fh: pickle.dump(_Evil(tmp_path/'pwned'), fh)
    with pytest.raises(UlmfitError, match="Refusing to unpickle .*unpickling runs arbitrary code"): load_legacy(f)
    assert not (tmp_path/'pwned').exists()
    g = tmp_path/'vocab.pkl'
    with open(g, 'wb') as fh: pickle.dump(L(['a', 'b']), fh)
    assert list(load_legacy(g, allow_pickle=True)) == ['a', 'b']

def test_read_weights_refuses_pickled_objects(tmp_path):
    f = tmp_path/'w.pth'
    torch.save({'w': torch.zeros(2), 'x': _Evil(tmp_path/'pwned')}, f)
    with pytest.raises(UlmfitError, match="torch.load could not read"): read_weights(f)
    assert not (tmp_path/'pwned').exists()

# ---------------------------------------------------------------- bundles
def _rehash(d):
    "Recompute the hashes in provenance.json (to get past the hash check and reach later checks)"
    p = json.loads((d/'provenance.json').read_text())
    p['files'] = {f: sha256_file(d/f) for f in p['files']}
    (d/'provenance.json').write_text(json.dumps(p))

@pytest.fixture
def clas_bundle(tmp_path):
    torch.manual_seed(0)
    d = save_bundle(tmp_path/'clas', tiny_clas(50), OLD_VOCAB, labels=['neg', 'neu', 'pos'], metrics={'accuracy': torch.tensor(0.75)},
                    data_desc={'name': 'toy', 'n_docs': 10}, bptt=72, config={'drop_mult': 0.5})
    return d

def test_bundle_contents(clas_bundle):
    d = clas_bundle
    assert sorted(p.name for p in d.iterdir()) == ['config.json', 'provenance.json', 'vocab.json', 'weights.pth']
    cfg, prov = json.loads((d/'config.json').read_text()), json.loads((d/'provenance.json').read_text())
    assert (cfg['kind'], cfg['arch'], cfg['labels'], cfg['backwards'], cfg['bptt'], cfg['extra']) == ('classifier', 'AWD_LSTM', ['neg', 'neu', 'pos'], False, 72, {'drop_mult': 0.5})
    assert cfg['awd_lstm']['n_hid'] == 10 and cfg['clas_head']['n_class'] == 3 and cfg['clas_head']['max_len'] == 72*20
    assert prov['metrics'] == {'accuracy': 0.75} and prov['data']['name'] == 'toy' and prov['versions']['fastai'].startswith('2.8')
    assert prov['files'] == {f: sha256_file(d/f) for f in ('config.json', 'vocab.json', 'weights.pth')}
    assert isinstance(torch.load(d/'weights.pth', weights_only=True), dict)

def test_bundle_missing_vocab(clas_bundle):
    (clas_bundle/'vocab.json').unlink()
    with pytest.raises(UlmfitError, match="is missing vocab.json"): load_bundle(clas_bundle)

def test_bundle_missing_provenance(clas_bundle):
    (clas_bundle/'provenance.json').unlink()
    with pytest.raises(UlmfitError, match="is missing provenance.json"): load_bundle(clas_bundle)

def test_bundle_truncated_weights(clas_bundle):
    w = clas_bundle/'weights.pth'
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(UlmfitError, match=r"weights.pth does not match the sha256 recorded in provenance.json: the file is truncated"):
        load_bundle(clas_bundle)
    _rehash(clas_bundle)
    with pytest.raises(UlmfitError, match=r"torch.load could not read .*weights.pth"): load_bundle(clas_bundle)

def test_bundle_config_weights_disagree(clas_bundle):
    c = json.loads((clas_bundle/'config.json').read_text())
    c['awd_lstm']['n_hid'] = 1152
    (clas_bundle/'config.json').write_text(json.dumps(c))
    with pytest.raises(UlmfitError, match="does not match the sha256"): load_bundle(clas_bundle)
    _rehash(clas_bundle)
    with pytest.raises(UlmfitError, match=r"(?s)do not fit config.json.*n_hid 10 in .*weights.pth, 1152 in config.json.*save it again"):
        load_bundle(clas_bundle)

def test_bundle_vocab_disagrees(clas_bundle):
    (clas_bundle/'vocab.json').write_text(json.dumps(OLD_VOCAB[:-2])); _rehash(clas_bundle)
    with pytest.raises(UlmfitError, match="vocab.json has 48 tokens but config.json says vocab_sz=50"): load_bundle(clas_bundle)

def test_bundle_overwrite_rules(clas_bundle, tmp_path):
    with pytest.raises(UlmfitError, match="already exists"): save_bundle(clas_bundle, tiny_lm(), OLD_VOCAB)
    save_bundle(clas_bundle, tiny_lm(), OLD_VOCAB, overwrite=True)
    assert load_bundle(clas_bundle).kind == 'lm'
    other = tmp_path/'my_data'; other.mkdir(); (other/'precious.txt').write_text('x')
    with pytest.raises(UlmfitError, match="is not a ulmfit_ext bundle"): save_bundle(other, tiny_lm(), OLD_VOCAB, overwrite=True)
    assert (other/'precious.txt').read_text() == 'x'
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []

def test_bundle_write_is_atomic(clas_bundle, monkeypatch):
    "A crash while writing leaves the old bundle intact and no temporary folder behind"
    before = sha256_file(clas_bundle/'weights.pth')
    def _crash(*a, **k): raise RuntimeError('disk full')
    monkeypatch.setattr(ubundle, '_dump_json', _crash)
    with pytest.raises(RuntimeError, match='disk full'): save_bundle(clas_bundle, tiny_lm(), OLD_VOCAB, overwrite=True)
    monkeypatch.undo()
    assert sha256_file(clas_bundle/'weights.pth') == before and load_bundle(clas_bundle).kind == 'classifier'
    assert [p.name for p in clas_bundle.parent.iterdir() if p.name.startswith('.')] == []

def test_bundle_argument_checks(tmp_path):
    with pytest.raises(UlmfitError, match="49 tokens but the model's embedding has 50 rows"): save_bundle(tmp_path/'b', tiny_lm(), OLD_VOCAB[:-1])
    with pytest.raises(UlmfitError, match="2 labels were given but the classifier has 3 outputs"): save_bundle(tmp_path/'b', tiny_clas(), OLD_VOCAB, labels=['a', 'b'])
    with pytest.raises(UlmfitError, match="not JSON-serialisable"): save_bundle(tmp_path/'b', tiny_lm(), OLD_VOCAB, metrics={'f': object()})
    assert not (tmp_path/'b').exists()

def test_encoder_bundle_into_classifier(tmp_path):
    lm = tiny_lm()
    b = load_bundle(save_bundle(tmp_path/'enc', lm, OLD_VOCAB, kind='encoder'))
    assert b.kind == 'encoder' and set(b.state_dict) == set(lm[0].state_dict())
    assert isinstance(b.build_model(), AWD_LSTM)
    clas = tiny_clas(); load_encoder_weights(clas, b.state_dict)
    assert torch.equal(clas[0].module.encoder.weight, lm[0].encoder.weight)

@pytest.fixture
def spm_tok(tmp_path, monkeypatch):
    "A real SentencePiece tokenizer: a tiny model trained in a second on toy text, in a private cache"
    from ulmfit_ext.subword import spm_tokenizer
    monkeypatch.setenv('ULMFIT_CACHE', str(tmp_path/'cache'))
    texts = [f"The cat {w} on the mat, and the dog {w} under the TREE." for w in 'sat ran slept ate sang hid'.split()*20]
    return spm_tokenizer(texts, vocab_sz=48, num_threads=1, progress=False)

@pytest.mark.parametrize('which', ['SpmTokenizer', 'SentencePieceTokenizer'])
def test_sentencepiece_bundle_round_trip(spm_tok, tmp_path, which):
    "spm.model travels in the bundle, checksummed, and the tokenizer rebuilt from it gives identical tokens"
    from fastai.text.all import SentencePieceTokenizer
    from ulmfit_ext.subword import spm_vocab
    model = Path(spm_tok.tok.sp_model)
    tok = spm_tok if which == 'SpmTokenizer' else Tokenizer(SentencePieceTokenizer(sp_model=model, cache_dir=tmp_path/'sp'))
    vocab = spm_vocab(model)
    d = save_bundle(tmp_path/'b', tiny_lm(len(vocab)), vocab, tokenizer=tok)
    assert (d/'spm.model').read_bytes() == model.read_bytes()
    b = load_bundle(d)
    assert b.provenance['files']['spm.model'] == sha256_file(model) and b.tokenizer_spec['tokenizer'] == which and b.vocab == vocab
    rebuilt = b.build_tokenizer()
    assert Path(rebuilt.tok.sp_model) == d/'spm.model'
    for s in ["The CAT sang on the mat!!! Then the dog hid.", "zebras (unseen) ate 42 apples", ""]: assert rebuilt(s) == tok(s)
    (d/'spm.model').write_bytes(b'changed')
    with pytest.raises(UlmfitError, match="spm.model does not match the sha256"): load_bundle(d)

def test_sentencepiece_bundle_needs_no_remap(spm_tok, tmp_path):
    "Data tokenized with the bundle's model have its vocabulary: nothing remapped; a word vocabulary is refused with the fix"
    from ulmfit_ext.subword import spm_vocab
    vocab = spm_vocab(spm_tok.tok.sp_model)
    lm = tiny_lm(len(vocab))
    d = save_bundle(tmp_path/'b', lm, vocab, tokenizer=spm_tok)
    dst = tiny_lm(len(vocab))
    rep = load_pretrained_lm(dst, vocab=vocab, source=d, verbose=False)
    assert rep.identical and rep.n_new == 0 and 'nothing remapped' in repr(rep)
    assert torch.equal(dst[0].encoder.weight, lm[0].encoder.weight)
    with pytest.raises(UlmfitError, match=r"tokenized another way.*vocab=load_bundle\("): load_pretrained_lm(tiny_lm(50), vocab=OLD_VOCAB, source=d, verbose=False)

def test_build_tokenizer_refuses_unknown_names():
    spec = dict(tokenizer='SpacyTokenizer', params=dict(lang='en'), rules=['fix_html', 'os.system'], sep=' ')
    with pytest.raises(UlmfitError, match=r"Unknown tokenizer rules \['os.system'\]"): build_tokenizer(spec)
    with pytest.raises(UlmfitError, match="is not one of fastai's"): build_tokenizer({**spec, 'tokenizer': 'subprocess.Popen'})

# ---------------------------------------------------------------- learners
@pytest.fixture(scope='module')
def toy_df():
    import pandas as pd
    return pd.DataFrame({'text': [f'The cat sat on mat number {i} and was HAPPY' for i in range(40)], 'label': ['a', 'b'] * 20})

def test_learner_bundles(toy_df, tmp_path):
    dls = TextDataLoaders.from_df(toy_df, text_col='text', label_col='label', bs=8, seq_len=10, backwards=True)
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(emb_sz=20, n_hid=10, n_layers=2), pretrained=False)
    b = load_bundle(save_classifier_bundle(learn, tmp_path/'clas', metrics={'accuracy': 0.5}))
    assert (b.labels, b.config['backwards'], b.vocab) == (['a', 'b'], True, list(dls.vocab[0]))
    tok = dls_info(dls).tokenizer
    assert b.tokenizer_spec['tokenizer'] == 'SpacyTokenizer' and 'replace_all_caps' in b.tokenizer_spec['rules']
    assert list(b.build_tokenizer()('The CAT sat!!!!')) == list(tok('The CAT sat!!!!'))
    e = load_bundle(save_encoder_bundle(learn, tmp_path/'enc'))
    assert e.kind == 'encoder' and sorted(e.state_dict) == sorted(learn.model[0].module.state_dict())

def test_lm_learner_bundle_and_pretrained(toy_df, tmp_path, fake_wt103):
    dls = TextDataLoaders.from_df(toy_df, text_col='text', is_lm=True, bs=4, seq_len=5)
    learn = language_model_learner(dls, AWD_LSTM, config=dict(awd_lstm_lm_config, emb_sz=20, n_hid=10, n_layers=2), pretrained=False)
    rep = load_pretrained_lm(learn, path=fake_wt103[0], verbose=False)   # vocabulary from the dls
    assert rep.n_target == len(dls.vocab) and rep.n_shared == 0 and rep.n_new == len(dls.vocab)   # 'w0'.. share nothing with the toy text
    assert learn.opt is not None and not all(p.requires_grad for p in learn.model[0].rnns[0].parameters())  # frozen
    b = load_bundle(save_lm_bundle(learn, tmp_path/'lm'))
    assert (b.kind, b.config['bptt'], b.config['backwards']) == ('lm', 5, False)
    assert torch.equal(b.build_model()[1].decoder.weight, learn.model[1].decoder.weight)

# ---------------------------------------------------------------- fresh process and cross-version
def _preds(m):
    "Predictions of `m` in eval mode on a fixed input, from a reset hidden state"
    x = torch.randint(2, 50, (3, 20), generator=torch.Generator().manual_seed(1))
    m.eval(); m.reset()
    with torch.no_grad(): return m(x)[0]

def _write_bundles(dst):
    "Save a tiny LM and classifier as bundles in `dst`, with their predictions"
    import fastai
    torch.manual_seed(0)
    cfg = dict(emb_sz=20, n_hid=10, n_layers=2)
    ms = dict(lm=get_language_model(AWD_LSTM, 50, config={**awd_lstm_lm_config, **cfg}),
              clas=get_text_classifier(AWD_LSTM, 50, 3, config={**awd_lstm_clas_config, **cfg}))
    for k, m in ms.items(): save_bundle(Path(dst)/k, m, OLD_VOCAB, labels=['a', 'b', 'c'] if k == 'clas' else None, data_desc=f'fastai {fastai.__version__}')
    torch.save({k: _preds(m) for k, m in ms.items()}, Path(dst)/'preds_saved.pt')

def _read_bundles(src):
    "Load the bundles in `src`, save this interpreter's predictions; return its fastai version"
    import fastai
    torch.save({k: _preds(load_bundle(Path(src)/k).build_model()) for k in ('lm', 'clas')}, Path(src)/f'preds_loaded_{fastai.__version__}.pt')
    return fastai.__version__

def _main(src, dst):
    "Entry point for the subprocess: read bundles in `src` (if not '-'), then write bundles to `dst` (if not '-')"
    import fastai
    if src != '-': _read_bundles(src)
    if dst != '-': _write_bundles(dst)
    print(fastai.__version__)

def _run(python, src, dst):
    "Run `_main(src, dst)` in a fresh interpreter `python`; return its fastai version"
    code = f"import sys; sys.path.insert(0, {str(ROOT/'tests')!r}); import test_io; test_io._main(sys.argv[1], sys.argv[2])"
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}
    out = subprocess.run([str(python), '-c', code, str(src), str(dst)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]

def _same_preds(saved, loaded):
    a, b = torch.load(saved, weights_only=True), torch.load(loaded, weights_only=True)
    assert set(a) == set(b) == {'lm', 'clas'}
    for k in a: assert a[k].shape == b[k].shape and torch.allclose(a[k], b[k], atol=1e-6), k

def test_round_trip_in_fresh_process(tmp_path):
    "Save here, load in a fresh interpreter: identical LM and classifier predictions in eval mode"
    _write_bundles(tmp_path)
    v = _run(sys.executable, tmp_path, '-')
    _same_preds(tmp_path/'preds_saved.pt', tmp_path/f'preds_loaded_{v}.pt')

def _other_envs():
    here = Path(sys.prefix).resolve()
    return [ROOT/e for e in ('.venv', '.venv-new') if (ROOT/e).resolve() != here]

@pytest.mark.slow   # two interpreters start fastai: ~20 s on a loaded 2-core machine
@pytest.mark.parametrize('env', _other_envs(), ids=lambda p: p.name)
def test_cross_version_bundles(env, tmp_path):
    "Bundles written under one fastai version load under the other, in both directions, with identical predictions"
    python = env/'bin'/'python'
    if not python.exists(): pytest.skip(f'{python} is absent')
    a, b = tmp_path/'here', tmp_path/'there'
    a.mkdir(); b.mkdir()
    _write_bundles(a)                  # this interpreter writes a/
    v_there = _run(python, a, b)       # the other loads a/ and writes b/
    v_here = _read_bundles(b)          # this one loads b/
    _same_preds(a/'preds_saved.pt', a/f'preds_loaded_{v_there}.pt')
    _same_preds(b/'preds_saved.pt', b/f'preds_loaded_{v_here}.pt')
    assert json.loads((b/'lm'/'provenance.json').read_text())['versions']['fastai'] == v_there
    print(f'bundles crossed fastai {v_here} <-> {v_there}')

# ---------------------------------------------------------------- trust and publishing (issue 13)
def test_classifier_bundle_is_not_a_pretrained_lm(clas_bundle):
    "Item 13: the io functions both the API and the CLI use refuse a classifier as the source of a language model"
    lm = tiny_lm(50)
    with pytest.raises(UlmfitError, match="holds a classifier, but a language model or encoder bundle is needed"):
        load_pretrained_lm(lm, vocab=OLD_VOCAB, source=clas_bundle, verbose=False)
    b = load_bundle(clas_bundle)
    sd, _ = remap_embeddings(b.state_dict, b.vocab, OLD_VOCAB)   # what the CLI's finetune-lm --pretrained does
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    with pytest.raises(UlmfitError, match="holds a classifier, not a language model"): load_encoder_weights(lm, sd, what=str(clas_bundle))
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in before.items())   # nothing was loaded
    with pytest.raises(UlmfitError, match="holds a classifier, but a language model bundle is needed"): load_bundle(clas_bundle, kinds=('lm',))

def test_pinned_digest_catches_rehashed_edit(clas_bundle):
    "What to build 6 / item 18: a deliberate edit plus re-hash passes the checksums but not the pinned digest"
    d = bundle_digest(clas_bundle)
    assert d == sha256_file(clas_bundle/'provenance.json') and load_bundle(clas_bundle, sha256=d).labels == ['neg', 'neu', 'pos']
    c = json.loads((clas_bundle/'config.json').read_text()); c['labels'] = ['pos', 'neu', 'neg']
    (clas_bundle/'config.json').write_text(json.dumps(c)); _rehash(clas_bundle)
    assert load_bundle(clas_bundle).labels == ['pos', 'neu', 'neg']   # unpinned: accepted
    with pytest.raises(UlmfitError, match=f"is not the one expected: its digest .* is {bundle_digest(clas_bundle)}, not {d}"):
        load_bundle(clas_bundle, sha256=d)
    with pytest.raises(UlmfitError, match="`sha256`='xyz' is not a sha256 digest"): load_bundle(clas_bundle, sha256='xyz')

def test_unlisted_file_is_not_read(clas_bundle):
    "A tokenizer.json added after saving is outside every checksum, so the pin would not cover it: refused"
    (clas_bundle/'tokenizer.json').write_text(json.dumps(dict(tokenizer='BaseTokenizer', params={}, rules=[], sep=' ')))
    with pytest.raises(UlmfitError, match="tokenizer.json in the bundle .* are not covered by the checksums"): load_bundle(clas_bundle)

def test_two_bundle_writers(tmp_path, monkeypatch):
    "Item 5 / what to build 2: two saves to one new path at once: one bundle, one refusal, a bundle that loads"
    import threading
    gate, orig = threading.Barrier(2, timeout=20), ubundle._write_files
    def slow(*a, **k): orig(*a, **k); gate.wait()   # both have written their files before either publishes
    monkeypatch.setattr(ubundle, '_write_files', slow)
    res = [None, None]
    def save(i):
        try: res[i] = save_bundle(tmp_path/'b', tiny_clas(50, n_class=2+i), OLD_VOCAB)
        except UlmfitError as e: res[i] = e
    ts = [threading.Thread(target=save, args=(i,)) for i in range(2)]
    for t in ts: t.start()
    for t in ts: t.join(30)
    won = [i for i in range(2) if isinstance(res[i], Path)]
    assert len(won) == 1 and 'already exists' in str(res[1-won[0]])
    assert load_bundle(tmp_path/'b').config['clas_head']['n_class'] == 2 + won[0]
    assert [p.name for p in tmp_path.iterdir()] == ['b']

def test_bundle_leftovers_cleaned(tmp_path):
    "Item 14: the temporary folders a killed save left are removed by the next save to that path"
    p = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    (tmp_path/f'.b.{int(p.stdout)}-abcd.part').mkdir(); (tmp_path/f'.b.old-{int(p.stdout)}-12345678').mkdir()
    save_bundle(tmp_path/'b', tiny_lm(), OLD_VOCAB)
    assert [p.name for p in tmp_path.iterdir()] == ['b']
