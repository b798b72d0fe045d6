"""The issue-13 probe kept as a test suite, API half: bad inputs to the library's public functions.

Each case must raise `UlmfitError` itself (not a `TypeError`, `ZeroDivisionError`, `KeyError`, ... from fastai, torch or pandas),
with a message that names the argument (as `` `bs` ``, the form the command line rewrites into `--bs`) or the file, and must leave
every file that existed before byte-identical (sha256 before/after). The command-line half belongs with the CLI's tests."""
import gzip, hashlib, json, re, shutil, warnings
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from fastai.text.all import BaseTokenizer
from ulmfit_ext.core import UlmfitError, check_args, atomic_path, atomic_dir, set_determinism
from ulmfit_ext.readers import read_texts
from ulmfit_ext.tokens import tokenize_corpus
from ulmfit_ext.data import lm_dls, clas_dls
from ulmfit_ext.learner import lm_learner, clas_learner
from ulmfit_ext.test_utils import toy_df, tiny_cfg
from ulmfit_ext import weights as uweights, bundle as ubundle
from ulmfit_ext.inference import predict_texts, predict_probs
from ulmfit_ext.pair import BiClassifier, backward_dls
from ulmfit_ext.generate import generate
from ulmfit_ext.pretrain import pretrain_lm, pretrain_dls, _toy_corpus
from ulmfit_ext.stage1 import find_stage1
from ulmfit_ext.pipeline import stage2, stage3

FAST = dict(tok=BaseTokenizer(), n_workers=0, progress=False)
RUN = dict(preset='tiny', n_epoch=1, bs=8, bptt=10, min_freq=1, config=dict(emb_sz=16, n_hid=24, n_layers=2), **FAST)

@pytest.fixture(scope='module')
def w(tmp_path_factory):
    "A folder of good outputs (bundles, an ensemble, a finished Stage-1 run, predictions) and bad inputs"
    root = tmp_path_factory.mktemp('probe')
    mp = pytest.MonkeyPatch(); mp.setenv('ULMFIT_CACHE', str(root.parent/f'{root.name}-cache'))
    df = toy_df(100)
    df.to_csv(root/'data.csv', index=False)
    df.assign(label='pos').to_csv(root/'one_class.csv', index=False)
    df.assign(text=df.text.where(df.index != 40, 'un café crème')).to_csv(root/'latin1.csv', index=False, encoding='latin-1')
    (root/'empty.csv').write_text('')
    (root/'folder.csv').mkdir()
    _toy_corpus(root/'corpus.txt', n=200)
    _toy_corpus(root/'held_out.txt', n=30, seed=1)
    (root/'binary.txt').write_bytes(bytes(range(256)) * 64)
    with gzip.open(root/'cut.txt.gz', 'wb') as f: f.write((root/'corpus.txt').read_bytes() * 20)
    (root/'cut.txt.gz').write_bytes((root/'cut.txt.gz').read_bytes()[:300])
    torch.manual_seed(0)
    dls_lm = lm_dls(df, bs=8, bptt=10, seed=0, cache=False, **FAST)
    dls_c = clas_dls(df, vocab=dls_lm.vocab, valid_col='is_valid', bs=8, bptt=10, cache=False, **FAST)
    _, dls_cb = backward_dls(dls_lm, df, df, clas_kwargs=dict(valid_col='is_valid'), bs=8, bptt=10, seed=0, cache=False, **FAST)
    lm, fwd, bwd = lm_learner(dls_lm, config=tiny_cfg), clas_learner(dls_c, config=tiny_cfg, bptt=10), clas_learner(dls_cb, config=tiny_cfg, bptt=10)
    ubundle.save_lm_bundle(lm, root/'lm'); ubundle.save_classifier_bundle(fwd, root/'clas')
    for name, f, edit in [('edited_cfg', 'config.json', lambda c: c.pop('awd_lstm')), ('edited_tok', 'tokenizer.json', lambda c: c.pop('rules'))]:
        shutil.copytree(root/'clas', root/name)   # hand-edited and re-hashed, so the checksums agree
        c = json.loads((root/name/f).read_text()); edit(c); (root/name/f).write_text(json.dumps(c))
        prov = json.loads((root/name/'provenance.json').read_text())
        prov['files'] = {n: hashlib.sha256((root/name/n).read_bytes()).hexdigest() for n in prov['files']}
        (root/name/'provenance.json').write_text(json.dumps(prov))
    ens = BiClassifier(fwd, bwd); ens.save(root/'ens')
    ens.save(root/'badens')
    meta = json.loads((root/'badens'/'ensemble.json').read_text())
    (root/'badens'/'ensemble.json').write_text(json.dumps(dict(meta, members=dict(fwd='../clas', bwd='bwd'))))
    predict_texts(fwd, df.text[:5].tolist(), progress=False).to_csv(root/'preds.csv')
    pretrain_lm(root/'corpus.txt', root/'run', valid=root/'held_out.txt', **RUN)
    yield dict(root=root, dls_lm=dls_lm, dls_c=dls_c, lm=lm, fwd=fwd)
    mp.undo()

def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob('*')) if p.is_file()}

def _lm_cfg(**kw): return dict(config=dict(tiny_cfg, **kw))

# (id, call taking the fixture dict, regex the message must match)
CASES = [
    # ---- corpus readers and DataLoaders
    ('lm_dls bs 0', lambda w: lm_dls(w['root']/'data.csv', bs=0), r'`bs`=0 is out of range'),
    ('lm_dls bs -1', lambda w: lm_dls(w['root']/'data.csv', bs=-1), r'`bs`=-1'),
    ('lm_dls bs float', lambda w: lm_dls(w['root']/'data.csv', bs=2.5), r'`bs`=2.5 is not a whole number'),
    ('lm_dls bs str', lambda w: lm_dls(w['root']/'data.csv', bs='64'), r"`bs`='64' is not a whole number"),
    ('lm_dls bptt 0', lambda w: lm_dls(w['root']/'data.csv', bptt=0), r'`bptt`=0'),
    ('lm_dls max_vocab 0', lambda w: lm_dls(w['root']/'data.csv', max_vocab=0), r'`max_vocab`=0 .*special tokens'),
    ('lm_dls max_vocab 8', lambda w: lm_dls(w['root']/'data.csv', max_vocab=8), r'`max_vocab`=8'),
    ('lm_dls min_freq -1', lambda w: lm_dls(w['root']/'data.csv', min_freq=-1), r'`min_freq`=-1'),
    ('lm_dls min_freq huge', lambda w: lm_dls(w['root']/'data.csv', min_freq=10**7, **FAST), r"`min_freq`=10000000 times"),
    ('lm_dls valid_pct 1.5', lambda w: lm_dls(w['root']/'data.csv', valid_pct=1.5), r'`valid_pct`=1.5'),
    ('lm_dls valid_pct 0', lambda w: lm_dls(w['root']/'data.csv', valid_pct=0), r'`valid_pct`=0'),
    ('lm_dls valid_pct nan', lambda w: lm_dls(w['root']/'data.csv', valid_pct=float('nan')), r'`valid_pct`=nan is not a number'),
    ('lm_dls seed -1', lambda w: lm_dls(w['root']/'data.csv', seed=-1), r'`seed`=-1'),
    ('lm_dls n_workers -2', lambda w: lm_dls(w['root']/'data.csv', n_workers=-2), r'`n_workers`=-2'),
    ('lm_dls bs above tokens', lambda w: lm_dls(w['root']/'data.csv', bs=50_000, min_freq=1, **FAST), r'too few for `bs`=50000'),
    ('lm_dls text_col', lambda w: lm_dls(w['root']/'data.csv', text_col='review', **FAST), r"\['review'\] not in the DataFrame"),
    ('lm_dls latin-1 csv', lambda w: lm_dls(w['root']/'latin1.csv', **FAST), r'latin1.csv is not valid utf-8: line \d+ \(byte \d+\).*`encoding=`'),
    ('lm_dls binary', lambda w: lm_dls(w['root']/'binary.txt', **FAST), r'binary.txt looks like a binary file'),
    ('lm_dls truncated gz', lambda w: lm_dls(w['root']/'cut.txt.gz', **FAST), r'cut.txt.gz is truncated'),
    ('lm_dls split', lambda w: lm_dls(w['root']/'corpus.txt', split='words', **FAST), r"`split`='words' is not one of"),
    ('read_texts missing', lambda w: list(read_texts(w['root']/'nope.txt')), r'No such file or folder: .*nope.txt'),
    ('read_texts encoding', lambda w: read_texts(w['root']/'corpus.txt', encoding='utf-42'), r"`encoding`='utf-42'"),
    ('read_texts forced encoding', lambda w: list(read_texts(w['root']/'latin1.csv', encoding='utf-8', extensions=('.csv',))), r'latin1.csv is not valid utf-8: line'),
    ('tokenize_corpus max_chars 0', lambda w: tokenize_corpus(w['root']/'corpus.txt', max_chars=0), r'`max_chars`=0'),
    ('tokenize_corpus chunk_chars', lambda w: tokenize_corpus(w['root']/'corpus.txt', chunk_chars=-1), r'`chunk_chars`=-1'),
    ('tokenize_corpus max_docs', lambda w: tokenize_corpus(w['root']/'corpus.txt', max_docs=0), r'`max_docs`=0'),
    ('clas_dls bs 0', lambda w: clas_dls(w['root']/'data.csv', vocab=None, bs=0), r'`bs`=0'),
    ('clas_dls bs above rows', lambda w: clas_dls(w['root']/'data.csv', vocab=w['dls_lm'], valid_col='is_valid', bs=500, **FAST), r'80 training rows, fewer than `bs`=500'),
    ('clas_dls one class', lambda w: clas_dls(w['root']/'one_class.csv', vocab=w['dls_lm'], valid_col='is_valid', bs=8, **FAST), r"same class \('pos' in column 'label'\)"),
    ('clas_dls folder', lambda w: clas_dls(w['root']/'folder.csv', vocab=None), r'folder.csv is a folder, not a CSV file'),
    ('clas_dls missing csv', lambda w: clas_dls(w['root']/'nope.csv', vocab=None), r'No such CSV file: .*nope.csv'),
    ('clas_dls empty csv', lambda w: clas_dls(w['root']/'empty.csv', vocab=None), r'empty.csv is not a readable CSV file'),
    ('clas_dls latin-1', lambda w: clas_dls(w['root']/'latin1.csv', vocab=None, **FAST), r'latin1.csv is not valid utf-8: line \d+'),
    ('clas_dls label_col', lambda w: clas_dls(w['root']/'data.csv', vocab=None, label_col='topic'), r"\['topic'\] not in the DataFrame"),
    ('clas_dls valid_col', lambda w: clas_dls(w['root']/'data.csv', vocab=None, valid_col='split'), r"\['split'\] not in the DataFrame"),
    ('clas_dls valid_pct', lambda w: clas_dls(w['root']/'data.csv', vocab=None, valid_pct=2), r'`valid_pct`=2'),
    ('clas_dls vocab', lambda w: clas_dls(w['root']/'data.csv', vocab=[1, 2], bs=8, **FAST), r'`vocab` must be a list of token strings'),
    ('clas_dls encoding', lambda w: clas_dls(w['root']/'data.csv', vocab=None, encoding='klingon'), r"`encoding`='klingon'"),
    # ---- learner factories
    ('lm_learner emb_sz -5', lambda w: lm_learner(w['dls_lm'], **_lm_cfg(emb_sz=-5)), r'`emb_sz`=-5'),
    ('lm_learner emb_sz absurd', lambda w: lm_learner(w['dls_lm'], **_lm_cfg(emb_sz=2**20)), r'`emb_sz`=1048576.*more than the .* of memory available'),
    ('lm_learner n_hid 0', lambda w: lm_learner(w['dls_lm'], **_lm_cfg(n_hid=0)), r'`n_hid`=0'),
    ('lm_learner n_hid absurd', lambda w: lm_learner(w['dls_lm'], **_lm_cfg(n_hid=10**9)), r'`n_hid`=1000000000 is out of range'),
    ('lm_learner n_layers 0', lambda w: lm_learner(w['dls_lm'], **_lm_cfg(n_layers=0)), r'`n_layers`=0'),
    ('lm_learner drop_mult -1', lambda w: lm_learner(w['dls_lm'], config=tiny_cfg, drop_mult=-1), r'`drop_mult`=-1'),
    ('lm_learner drop_mult 10', lambda w: lm_learner(w['dls_lm'], config=tiny_cfg, drop_mult=10), r'`drop_mult`=10 makes dropout probabilities above 1'),
    ('lm_learner config key', lambda w: lm_learner(w['dls_lm'], config=dict(tiny_cfg, n_hidden=5)), r"unknown key\(s\) \['n_hidden'\]"),
    ('lm_learner pretrained classifier', lambda w: lm_learner(w['dls_lm'], config=tiny_cfg, pretrained=w['root']/'clas'), r'clas holds a classifier, but a language model or encoder bundle'),
    ('lm_learner pretrained name', lambda w: lm_learner(w['dls_lm'], config=tiny_cfg, pretrained='gpt2'), r"`pretrained`='gpt2'"),
    ('clas_learner n_out 0', lambda w: clas_learner(w['dls_c'], config=tiny_cfg, n_out=0), r'`n_out`=0'),
    ('clas_learner bptt 0', lambda w: clas_learner(w['dls_c'], config=tiny_cfg, bptt=0), r'`bptt`=0'),
    ('clas_learner max_len', lambda w: clas_learner(w['dls_c'], config=tiny_cfg, max_len=-1), r'`max_len`=-1'),
    ('clas_learner lin_ftrs', lambda w: clas_learner(w['dls_c'], config=tiny_cfg, lin_ftrs=[0]), r'`lin_ftrs\[0\]`=0'),
    ('clas_learner encoder sizes', lambda w: clas_learner(w['dls_c'], encoder=w['root']/'lm', config=dict(tiny_cfg, n_hid=12)), r'does not fit this classifier'),
    # ---- bundles
    ('load_bundle missing', lambda w: ubundle.load_bundle(w['root']/'nope'), r'There is no bundle folder at .*nope'),
    ('load_bundle csv', lambda w: ubundle.load_bundle(w['root']/'folder.csv'), r'folder.csv is missing provenance.json'),
    ('load_bundle pinned', lambda w: ubundle.load_bundle(w['root']/'clas', sha256='0'*64), r'clas is not the one expected'),
    ('load_bundle digest format', lambda w: ubundle.load_bundle(w['root']/'clas', sha256='abc'), r"`sha256`='abc' is not a sha256 digest"),
    ('load_bundle edited config', lambda w: ubundle.load_bundle(w['root']/'edited_cfg'), r"edited_cfg/config.json lacks the key 'awd_lstm'"),
    ('predict edited tokenizer', lambda w: predict_texts(w['root']/'edited_tok', ['a']), r"edited_tok/tokenizer.json lacks the key 'rules'"),
    ('load_bundle kind', lambda w: ubundle.load_bundle(w['root']/'clas', kinds=('lm',)), r'holds a classifier, but a language model bundle'),
    ('save_bundle exists', lambda w: ubundle.save_bundle(w['root']/'clas', w['fwd'].model, list(w['dls_lm'].vocab)), r'clas already exists'),
    ('save_bundle over non-bundle', lambda w: ubundle.save_bundle(w['root']/'run'/'checkpoints', w['fwd'].model, list(w['dls_lm'].vocab), overwrite=True), r'checkpoints exists and is not a ulmfit_ext bundle'),
    ('save_bundle vocab size', lambda w: ubundle.save_bundle(w['root']/'new', w['fwd'].model, ['a', 'b']), r"2 tokens but the model's embedding has"),
    ('load_pretrained_lm classifier', lambda w: ubundle.load_pretrained_lm(w['lm'], source=w['root']/'clas', verbose=False), r'holds a classifier'),
    ('load_encoder_weights classifier', lambda w: uweights.load_encoder_weights(w['lm'].model, w['fwd'].model.state_dict(), what='clas/weights.pth'), r'clas/weights.pth holds a classifier, not a language model'),
    ('read_weights text', lambda w: uweights.read_weights(w['root']/'corpus.txt'), r'torch.load could not read .*corpus.txt'),
    ('read_itos text', lambda w: uweights.read_itos(w['root']/'corpus.txt'), r'corpus.txt is not a plain pickled list'),
    ('atomic_path no-clobber', lambda w: atomic_path(w['root']/'preds.csv', overwrite=False).__enter__(), r'preds.csv already exists'),
    ('atomic_path onto a folder', lambda w: atomic_path(w['root']/'folder.csv', overwrite=True).__enter__(), r'folder.csv is a folder, so a file cannot be written'),
    ('atomic_dir no-clobber', lambda w: atomic_dir(w['root']/'lm').__enter__(), r'lm already exists'),
    # ---- inference
    ('predict no texts', lambda w: predict_texts(w['root']/'clas', []), r'no texts'),
    ('predict a string', lambda w: predict_texts(w['root']/'clas', 'one text'), r'not a single string'),
    ('predict NaN text', lambda w: predict_texts(w['root']/'clas', ['a', None]), r'missing \(NaN/None\), at position \[1\]'),
    ('predict bs 0', lambda w: predict_texts(w['root']/'clas', ['a'], bs=0), r'`bs`=0'),
    ('predict chunk_size', lambda w: predict_texts(w['root']/'clas', ['a'], chunk_size=0), r'`chunk_size`=0'),
    ('predict max_tokens', lambda w: predict_texts(w['root']/'clas', ['a'], max_tokens=0), r'`max_tokens`=0'),
    ('predict keep_end', lambda w: predict_texts(w['root']/'clas', ['a'], keep_end='middle'), r"`keep_end`='middle' is not one of 'head', 'tail'"),
    ('predict an LM', lambda w: predict_texts(w['root']/'lm', ['a']), r'lm is a language model; `predict_texts` needs a classifier'),
    ('predict pinned', lambda w: predict_texts(w['root']/'clas', ['a'], sha256='f'*64), r'clas is not the one expected'),
    ('predict pinned learner', lambda w: predict_texts(w['fwd'], ['a'], sha256='f'*64), r'`sha256` pins a bundle or ensemble folder'),
    ('ensemble member escapes', lambda w: BiClassifier.load(w['root']/'badens'), r"the fwd member '../clas', which is not a sub-folder"),
    ('ensemble member escapes, predict', lambda w: predict_texts(w['root']/'badens', ['a']), r'not a sub-folder of'),
    ('ensemble pinned', lambda w: BiClassifier.load(w['root']/'ens', sha256='0'*64), r'ens is not the one expected'),
    ('ensemble save exists', lambda w: BiClassifier.load(w['root']/'ens').save(w['root']/'ens'), r'ens already exists'),
    ('generate n_words', lambda w: generate(w['root']/'lm', 'the film', n_words=0), r'`n_words`=0'),
    ('generate temperature', lambda w: generate(w['root']/'lm', 'the film', temperature=-1), r'`temperature`=-1'),
    ('generate top_p', lambda w: generate(w['root']/'lm', 'the film', top_p=1.5), r'`top_p`=1.5'),
    ('generate a classifier', lambda w: generate(w['root']/'clas', 'the film'), r'clas is a classifier'),
    # ---- Stages 2 and 3 (`pipeline`): every argument checked before the data is read
    ('stage2 epochs 0', lambda w: stage2(w['root']/'data.csv', epochs=0), r'`n_epoch`=0 is out of range'),
    ('stage2 lr -1', lambda w: stage2(w['root']/'data.csv', lr=-1.), r'`lr`=-1.0'),
    ('stage2 patience 0', lambda w: stage2(w['root']/'data.csv', patience=0), r'`patience`=0'),
    ('stage2 variant', lambda w: stage2(w['root']/'data.csv', variant='full+stlr'), r"`variant`='full\+stlr' is not one of"),
    ('stage2 pinned', lambda w: stage2(w['root']/'data.csv', w['root']/'lm', sha256='0'*64), r'lm is not the one expected'),
    ('stage2 pinned wt103', lambda w: stage2(w['root']/'data.csv', 'wt103', sha256='0'*64), r"`sha256` pins a bundle folder, but the Stage-1 model is 'wt103'"),
    ('stage2 sizes with the shipped LM', lambda w: stage2(w['root']/'data.csv', config=dict(emb_sz=16)), r"`config` sets emb_sz=16, but the pretrained weights .*ulmfit-en.* have emb_sz=.*Pass `pretrained=None`"),
    ('lm_learner sizes with wt103', lambda w: lm_learner(w['dls_lm'], pretrained='wt103', config=dict(n_hid=24, n_layers=2)), r"`config` sets n_hid=24, n_layers=2, but .*'wt103'.* have n_hid=1152, n_layers=3"),
    ('lm_learner sizes with a bundle', lambda w: lm_learner(w['dls_lm'], pretrained=w['root']/'lm', config=dict(emb_sz=32)), r"`config` sets emb_sz=32, but .* have emb_sz=20"),
    ('stage2 checkpoint_dir is a file', lambda w: stage2(w['root']/'data.csv', checkpoint_dir=w['root']/'preds.csv'), r'`checkpoint_dir`=.*preds.csv.* is a file'),
    ('stage3 keep', lambda w: stage3(w['root']/'data.csv', w['root']/'lm', keep='median'), r"`keep`='median'"),
    ('stage3 schedule', lambda w: stage3(w['root']/'data.csv', w['root']/'lm', schedule='weekly'), r"`schedule`='weekly'"),
    ('stage3 drop_mult', lambda w: stage3(w['root']/'data.csv', w['root']/'lm', drop_mult=-2.), r'`drop_mult`=-2.0'),
    ('stage3 pinned', lambda w: stage3(w['root']/'data.csv', w['root']/'lm', sha256='f'*64), r'lm is not the one expected'),
    ('stage3 pinned learner', lambda w: stage3(w['root']/'data.csv', w['lm'], sha256='f'*64), r'`sha256` pins a bundle folder, but the language model is a LMLearner'),
    ('stage3 an LM that is a classifier', lambda w: stage3(w['root']/'data.csv', w['root']/'clas'), r'clas holds a classifier, but a language model or encoder bundle'),
    # ---- Stage 1
    ('pretrain finished', lambda w: pretrain_lm(w['root']/'corpus.txt', w['root']/'run', **RUN), r'run holds a finished pretraining run'),
    ('pretrain lr 0', lambda w: pretrain_lm(w['root']/'corpus.txt', w['root']/'run', overwrite=True, **{**RUN, 'lr': 0}), r'`lr`=0 is out of range'),
    ('pretrain lr -1', lambda w: pretrain_lm(w['root']/'corpus.txt', w['root']/'run', overwrite=True, **{**RUN, 'lr': -1}), r'`lr`=-1'),
    ('pretrain bs 0', lambda w: pretrain_lm(w['root']/'corpus.txt', w['root']/'run', overwrite=True, **{**RUN, 'bs': 0}), r'`bs`=0'),
    ('pretrain n_epoch 0', lambda w: pretrain_lm(w['root']/'corpus.txt', w['root']/'run', overwrite=True, **{**RUN, 'n_epoch': 0}), r'`n_epoch`=0'),
    ('pretrain max_vocab 0', lambda w: pretrain_lm(w['root']/'corpus.txt', w['root']/'run', overwrite=True, **{**RUN, 'max_vocab': 0}), r'`max_vocab`=0'),
    ('pretrain emb_sz -5', lambda w: pretrain_lm(w['root']/'corpus.txt', w['root']/'run', overwrite=True, **{**RUN, 'config': dict(emb_sz=-5)}), r'`emb_sz`=-5'),
    ('pretrain drop_mult', lambda w: pretrain_lm(w['root']/'corpus.txt', w['root']/'run', overwrite=True, **{**RUN, 'drop_mult': -1}), r'`drop_mult`=-1'),
    ('pretrain clip', lambda w: pretrain_lm(w['root']/'corpus.txt', w['root']/'run', overwrite=True, clip=-0.3, **RUN), r'`clip`=-0.3'),
    ('pretrain preset', lambda w: pretrain_lm(w['root']/'corpus.txt', w['root']/'run', preset='huge'), r"Unknown preset 'huge'"),
    ('pretrain out is a file', lambda w: pretrain_lm(w['root']/'corpus.txt', w['root']/'preds.csv', **RUN), r'`out`=.*preds.csv.* is a file, not a folder'),
    ('pretrain binary corpus', lambda w: pretrain_lm(w['root']/'binary.txt', w['root']/'run', overwrite=True, **RUN), r'binary.txt looks like a binary file'),
    ('pretrain truncated corpus', lambda w: pretrain_lm(w['root']/'cut.txt.gz', w['root']/'run', overwrite=True, **RUN), r'cut.txt.gz is truncated'),
    ('pretrain_dls bptt', lambda w: pretrain_dls(w['root']/'corpus.txt', bptt=0), r'`bptt`=0'),
    ('find_stage1 bundle', lambda w: find_stage1(bundle=w['root']/'nope', verbose=False), r"`bundle`=.*nope.* is not a ulmfit_ext bundle folder"),
    ('set_determinism seed', lambda w: set_determinism(seed=2**40), r'`seed`=1099511627776'),
]

@pytest.mark.parametrize('call,msg', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(w, call, msg):
    before = _snapshot(w['root'])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(Exception) as e: call(w)
    assert type(e.value) is UlmfitError, f"{type(e.value).__name__}: {e.value}"
    assert re.search(msg, str(e.value), re.S), str(e.value)
    after = _snapshot(w['root'])
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"existing files changed or removed: {changed}"
    assert set(after) == set(before), f"files left behind: {sorted(set(after) - set(before))}"

def test_enough_cases():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)
