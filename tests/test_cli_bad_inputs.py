"""The issue-13 probe kept as a test suite, command-line half: bad inputs to every `ulmfit` subcommand.

Each case must end with the exit code (2, or 130 for an interruption), exactly one line on stderr
(`ulmfit <sub>: error: ...`) that names the option or the file and speaks the command line's words (no `` `bs`= ``,
`overwrite=True`, `dict(...)`, `learn.`...), no traceback, and every file and folder under the work folder as it was
(sha256 of every file before and after, and nothing left behind). Most cases fail before any training; the models they
need are trained once for the module. The Python half is tests/test_bad_inputs.py."""
import gzip, hashlib, json, os, re, shutil, subprocess, sys, time
from pathlib import Path
import pandas as pd, pytest
from ulmfit_ext import cli
from ulmfit_ext.cli import main, subcommands, _flags
from ulmfit_ext.test_utils import toy_df

ULMFIT = Path(sys.executable).parent/'ulmfit'
TINY_LM = ['--pretrained', 'none', '--emb-sz', '16', '--n-hid', '16', '--n-layers', '2', '--bs', '8', '--bptt', '10', '--min-freq', '1']
TINY_CLAS = ['--bs', '8', '--bptt', '10', '--valid-col', 'is_valid']
TINY_PRE = ['--preset', 'tiny', '--max-tokens', '3000', '--epochs', '1', '--emb-sz', '16', '--n-hid', '16', '--bs', '8', '--bptt', '10', '--min-freq', '1']

def _call(args, capsys):
    "Run `main(args)` in this process; returns (exit code, stderr)"
    capsys.readouterr()
    try: main([str(a) for a in args]); code = 0
    except SystemExit as e: code = e.code
    return code, capsys.readouterr().err

def _rehash(folder):
    "Make provenance.json agree with the (edited) files of a bundle, as a deliberate editor would"
    prov = json.loads((folder/'provenance.json').read_text())
    prov['files'] = {n: hashlib.sha256((folder/n).read_bytes()).hexdigest() for n in prov['files']}
    (folder/'provenance.json').write_text(json.dumps(prov))

@pytest.fixture(scope='module')
def w(tmp_path_factory):
    "A work folder of good outputs (a Stage-1 run, an LM, a classifier, predictions, an evaluation) and bad inputs"
    root = tmp_path_factory.mktemp('cliprobe')
    mp = pytest.MonkeyPatch()
    cache = root.parent/f'{root.name}-cache'   # outside the folder that must not change
    mp.setenv('ULMFIT_CACHE', str(cache))
    df = toy_df(120)
    df.to_csv(root/'data.csv', index=False)
    (root/'texts.txt').write_text('\n'.join(df.text[:5]) + '\n')
    (root/'blank.txt').write_text('\n\n  \n')
    df.assign(label='pos').to_csv(root/'one_class.csv', index=False)
    df.assign(label=df.label.where(df.index != 7)).to_csv(root/'no_label.csv', index=False)
    df.assign(label=df.label.replace('pos', 'positive')).to_csv(root/'other_labels.csv', index=False)
    df.assign(text=df.text.where(df.index != 40, 'un café crème')).to_csv(root/'latin1.csv', index=False, encoding='latin-1')
    (root/'empty.csv').write_text('')
    (root/'folder.csv').mkdir()
    (root/'corpus.txt').write_text('\n\n'.join(df.text.tolist() * 2) + '\n')
    (root/'binary.txt').write_bytes(bytes(range(256)) * 64)
    with gzip.open(root/'cut.txt.gz', 'wb') as f: f.write((root/'corpus.txt').read_bytes() * 20)
    (root/'cut.txt.gz').write_bytes((root/'cut.txt.gz').read_bytes()[:300])
    (root/'notes.md').write_text('a file where a folder is expected\n')
    (root/'empty_dir').mkdir()
    for args in (['pretrain', root/'corpus.txt', '--out', root/'pre', *TINY_PRE],
                 ['finetune-lm', root/'data.csv', '--out', root/'lm', '--epochs', '1', *TINY_LM],
                 ['train-classifier', root/'data.csv', '--lm', root/'lm', '--out', root/'clas', '--epochs', '4', '--lr', '0.01', *TINY_CLAS],
                 ['predict', root/'clas', root/'data.csv', '--out', root/'preds.csv'],
                 ['evaluate', root/'clas', root/'data.csv', '--out', root/'eval']):
        try: main([str(a) for a in args])
        except SystemExit as e: raise AssertionError(f"{args[0]} failed: exit {e.code}")
    for name, f, edit in [('edited_cfg', 'config.json', lambda c: c.pop('awd_lstm')), ('edited_tok', 'tokenizer.json', lambda c: c.pop('rules'))]:
        shutil.copytree(root/'clas'/'bundle', root/name)   # hand-edited and re-hashed, so the checksums agree
        c = json.loads((root/name/f).read_text()); edit(c); (root/name/f).write_text(json.dumps(c))
        _rehash(root/name)
    (root/'badens').mkdir()
    (root/'badens'/'ensemble.json').write_text(json.dumps(dict(format='ulmfit_ext.ensemble', format_version=1, members=dict(fwd='../clas/bundle', bwd='bwd'),
                                                               combine='mean', labels=['neg', 'pos'])))
    _interrupted_run(root, mp)
    _interrupted_pretrain(root)
    (root/'damaged'/'checkpoints').mkdir(parents=True)
    (root/'damaged'/'checkpoints'/'epoch_001.pth').write_bytes(b'not a checkpoint')
    yield dict(root=root, cache=cache, digest=json.loads((root/'clas'/'metrics.json').read_text())['bundle_sha256'],
               lm_digest=json.loads((root/'lm'/'metrics.json').read_text())['bundle_sha256'])
    mp.undo()

def _interrupted_run(root, mp):
    "`finetune-lm --epochs 2` in stale/, interrupted (Ctrl-C) after its first epoch: one checkpoint of an unfinished run"
    from fastai.callback.core import Callback
    import ulmfit_ext.pipeline as P
    class _CtrlC(Callback):
        order = 200
        def after_epoch(self): raise KeyboardInterrupt()
    ft = P.finetune_lm
    with pytest.MonkeyPatch.context() as m:
        m.setattr(P, 'finetune_lm', lambda *a, cbs=None, **k: ft(*a, cbs=[*cbs, _CtrlC()], **k))
        try: main([str(a) for a in ['finetune-lm', root/'data.csv', '--out', root/'stale', '--epochs', '2', *TINY_LM]]); code = 0
        except SystemExit as e: code = e.code
    assert code == 130 and [p.name for p in (root/'stale'/'checkpoints').glob('epoch_*.pth')] == ['epoch_001.pth']

def _interrupted_pretrain(root):
    "`pretrain --epochs 2` in pre_cut/, interrupted after its first epoch"
    import ulmfit_ext.pretrain as PT
    save = PT.EpochCheckpoint.save
    def save_then_stop(self, n):
        save(self, n); raise KeyboardInterrupt()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(PT.EpochCheckpoint, 'save', save_then_stop)
        try: main([str(a) for a in ['pretrain', root/'corpus.txt', '--out', root/'pre_cut', *TINY_PRE[:5], '2', *TINY_PRE[6:]]]); code = 0
        except SystemExit as e: code = e.code
    assert code == 130 and [p.name for p in (root/'pre_cut'/'checkpoints').glob('epoch_*.pth')] == ['epoch_001.pth']

def _snapshot(root:Path) -> dict:
    "sha256 of every file and the list of every folder under `root`"
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else 'dir')
            for p in sorted(root.rglob('*'))}

_PYTHON_SPEAK = [r"`\w+`=", r"`\w+=", r"\b\w+=(?:True|False|None)\b", r"\bdict\(", r"\blearn\.", r"\(\.\.\.", r"\bconfig=",
                 r"\b(?:lm_dls|clas_dls|lm_learner|clas_learner|save_bundle|load_bundle|pretrain_lm|stage2|stage3|read_texts|tokenize_corpus|find_stage1|check_outputs)\b",
                 r"\.part\b", r"Traceback", r"\bself\b"]

def _check_line(sub, err, msg):
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{err}"
    line = lines[0]
    assert line.startswith(f"ulmfit {sub}: error: " if sub else 'ulmfit: error: '), line
    assert re.search(msg, line), f"{msg!r} not in: {line}"
    for p in _PYTHON_SPEAK: assert not re.search(p, line), f"Python words ({p}) in: {line}"
    if sub:   # the library's names of this subcommand's options, spelt as options
        for name in _flags(sub):
            if '_' in name: assert not re.search(rf"(?<![\w/.-]){name}(?![\w/])", line), f"{name} in: {line}"
    return line

def R(w, *parts): return str(Path(w['root'], *parts))

# (id, argv built from the fixture, regex the single stderr line must match[, exit code])
CASES = [
    # ---- pretrain
    ('pretrain bs 0', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--bs', '0'], r'--bs 0 is out of range'),
    ('pretrain bs -1', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--bs', '-1'], r'--bs -1 is out of range'),
    ('pretrain bs 2.5', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--bs', '2.5'], r"--bs: invalid int value: '2.5'"),
    ('pretrain bptt 0', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--bptt', '0'], r'--bptt 0 is out of range'),
    ('pretrain emb-sz -5', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--emb-sz', '-5'], r'--emb-sz -5 is out of range'),
    ('pretrain emb-sz absurd', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--emb-sz', '100000000'], r'--emb-sz 100000000 is out of range'),
    ('pretrain emb-sz too big for memory', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), *TINY_PRE, '--emb-sz', '1000000'], r'--emb-sz 1000000.*memory available'),
    ('pretrain n-hid 0', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--n-hid', '0'], r'--n-hid 0 is out of range'),
    ('pretrain n-layers 0', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--n-layers', '0'], r'--n-layers 0 is out of range'),
    ('pretrain drop-mult -1', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--drop-mult', '-1'], r'--drop-mult -1.0 is out of range'),
    ('pretrain lr 0', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--lr', '0'], r'--lr 0.0 is out of range'),
    ('pretrain lr -1', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--lr', '-1'], r'--lr -1.0 is out of range'),
    ('pretrain lr nan', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--lr', 'nan'], r'--lr nan is not a number'),
    ('pretrain epochs 0', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--epochs', '0'], r'--epochs 0 is out of range'),
    ('pretrain epochs -3', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--epochs', '-3'], r'--epochs -3 is out of range'),
    ('pretrain max-vocab 0', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--max-vocab', '0'], r'--max-vocab 0 is out of range.*special tokens'),
    ('pretrain min-freq -1', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--min-freq', '-1'], r'--min-freq -1 is out of range'),
    ('pretrain valid-pct 1.5', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--valid-pct', '1.5'], r'--valid-pct 1.5 is out of range'),
    ('pretrain seed -1', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--seed', '-1'], r'--seed -1 is out of range'),
    ('pretrain max-tokens 0', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--max-tokens', '0'], r'--max-tokens 0 is out of range'),
    ('pretrain preset', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--preset', 'huge'], r"Unknown preset 'huge'.*--emb-sz"),
    ('pretrain tokenizer', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--tokenizer', 'wordpiece'], r"--tokenizer wordpiece is not known"),
    ('pretrain vocab-size without spm', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--vocab-size', '100'], r'--vocab-size .*--tokenizer spm'),
    ('pretrain corpus missing', lambda w: ['pretrain', R(w, 'nope.txt'), '--out', R(w, 'new')], r'The corpus .*nope.txt does not exist'),
    ('pretrain valid missing', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--valid', R(w, 'nope.txt')], r'validation corpus .*nope.txt does not exist'),
    ('pretrain binary corpus', lambda w: ['pretrain', R(w, 'binary.txt'), '--out', R(w, 'new'), *TINY_PRE], r'binary.txt looks like a binary file'),
    ('pretrain truncated gz', lambda w: ['pretrain', R(w, 'cut.txt.gz'), '--out', R(w, 'new'), *TINY_PRE], r'cut.txt.gz is truncated'),
    ('pretrain out is a file', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'notes.md'), *TINY_PRE], r'--out .*notes.md is a file'),
    ('pretrain finished run', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'pre'), *TINY_PRE], r'pre holds a finished pretraining run.*--overwrite'),
    ('pretrain no-resume over checkpoints', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'pre_cut'), *TINY_PRE[:5], '2', *TINY_PRE[6:], '--no-resume'],
     r'pre_cut holds checkpoints of an unfinished run. Leave out --no-resume to continue it, or --overwrite to start over'),
    ('pretrain other settings', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'pre_cut'), *TINY_PRE[:5], '3', *TINY_PRE[6:]],
     r'pre_cut holds an unfinished run with other settings \(--epochs: 2 then, 3 now\).*--overwrite to start over'),
    ('pretrain no out', lambda w: ['pretrain', R(w, 'corpus.txt')], r'--out is required'),
    ('pretrain unknown option', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--epoch', '3', '--colour'], r'unrecognized arguments: --colour'),
    # ---- finetune-lm
    ('finetune-lm data missing', lambda w: ['finetune-lm', R(w, 'nope.csv'), '--out', R(w, 'new')], r'The data .*nope.csv does not exist'),
    ('finetune-lm text-col', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--text-col', 'review'], r"no column 'review'.*--text-col"),
    ('finetune-lm bs 0', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--bs', '0'], r'--bs 0 is out of range'),
    # ---- the device and the precision (refused before any data is read; a GPU machine with fewer than 8 GPUs refuses cuda:7 too)
    ('pretrain device cuda:7', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--device', 'cuda:7'], r'--device cuda:7 (asks for a CUDA GPU, but torch .* sees none|: torch sees \d+ CUDA GPU)'),
    ('pretrain precision fp16 on cpu', lambda w: ['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--device', 'cpu', '--precision', 'fp16'], r'--precision fp16 is mixed precision, .*CUDA only'),
    ('finetune-lm device cuda:7', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--device', 'cuda:7'], r'--device cuda:7 (asks for a CUDA GPU, but torch .* sees none|: torch sees \d+ CUDA GPU)'),
    ('finetune-lm device word', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--device', 'gpu'], r'--device gpu is not a device torch knows'),
    ('finetune-lm precision half', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--precision', 'half'], r"--precision half is not one of 'fp32', 'fp16', 'bf16'"),
    ('train-classifier device cuda:7', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), *TINY_CLAS, '--device', 'cuda:7'], r'--device cuda:7 (asks for a CUDA GPU, but torch .* sees none|: torch sees \d+ CUDA GPU)'),
    ('train-classifier precision bf16 on cpu', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), *TINY_CLAS, '--device', 'cpu', '--precision', 'bf16'], r'--precision bf16 is mixed precision, .*CUDA only'),
    ('finetune-lm bptt 0', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--bptt', '0'], r'--bptt 0 is out of range'),
    ('finetune-lm epochs 0', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--epochs', '0'], r'--epochs 0 is out of range'),
    ('finetune-lm epochs -2', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--epochs', '-2'], r'--epochs -2 is out of range'),
    ('finetune-lm lr 0', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--lr', '0'], r'--lr 0.0 is out of range'),
    ('finetune-lm drop-mult -1', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--drop-mult', '-1'], r'--drop-mult -1.0 is out of range'),
    ('finetune-lm drop-mult 10', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), *TINY_LM, '--drop-mult', '10'], r'--drop-mult 10.0 makes dropout probabilities above 1'),
    ('finetune-lm valid-pct 0', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--valid-pct', '0'], r'--valid-pct 0.0 is out of range'),
    ('finetune-lm valid-pct 1', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--valid-pct', '1'], r'--valid-pct 1.0 is out of range'),
    ('finetune-lm max-vocab 5', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--max-vocab', '5'], r'--max-vocab 5 is out of range'),
    ('finetune-lm min-freq -2', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--min-freq', '-2'], r'--min-freq -2 is out of range'),
    ('finetune-lm seed', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--seed', str(2**33)], r'--seed 8589934592 is out of range'),
    ('finetune-lm patience -1', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--patience', '-1'], r'--patience -1 is below 0'),
    ('finetune-lm keep', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--keep', 'worst'], r"--keep worst is not one of 'best', 'last'"),
    ('finetune-lm variant', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--variant', 'fast'], r"--variant fast is not one of"),
    ('finetune-lm variant none', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--variant', 'none'], r'--variant none trains nothing'),
    ('finetune-lm pretrained missing', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--pretrained', R(w, 'nope')], r'pretrained language model .*nope does not exist'),
    ('finetune-lm pretrained not a bundle', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--pretrained', R(w, 'empty_dir')], r'empty_dir holds no pretrained language model bundle'),
    ('finetune-lm pretrained classifier', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), *TINY_LM, '--pretrained', R(w, 'clas')], r'holds a classifier, but a language model or encoder bundle'),
    ('finetune-lm pretrained pinned', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--pretrained', R(w, 'pre'), '--expect-sha256', '0'*64], r'is not the one expected'),
    ('finetune-lm pin of the default Stage 1', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--expect-sha256', '0'*64], r'ulmfit-en/fwd is not the one expected'),
    ('finetune-lm pin with random weights', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--pretrained', 'none', '--expect-sha256', '0'*64], r'--expect-sha256 pins the Stage-1 model of --pretrained'),
    ('finetune-lm pin malformed', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--pretrained', R(w, 'pre'), '--expect-sha256', 'abc'], r"--expect-sha256 'abc' is not a sha256 digest"),
    ('finetune-lm pin wt103', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--pretrained', 'wt103', '--expect-sha256', 'f'*64], r"--expect-sha256 pins a bundle folder"),
    ('finetune-lm emb-sz 0', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), *TINY_LM, '--emb-sz', '0'], r'--emb-sz 0 is out of range'),
    ('finetune-lm n-hid -1', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), *TINY_LM, '--n-hid', '-1'], r'--n-hid -1 is out of range'),
    ('finetune-lm n-layers 0', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), *TINY_LM, '--n-layers', '0'], r'--n-layers 0 is out of range'),
    ('finetune-lm n-hid too big', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), *TINY_LM, '--n-hid', '1000000', '--n-layers', '3'], r'--n-hid 1000000.*memory available'),
    ('finetune-lm encoding', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), '--encoding', 'klingon'], r'--encoding klingon'),
    ('finetune-lm latin-1 csv', lambda w: ['finetune-lm', R(w, 'latin1.csv'), '--out', R(w, 'new'), *TINY_LM], r'latin1.csv is not valid utf-8: line \d+.*--encoding'),
    ('finetune-lm empty csv', lambda w: ['finetune-lm', R(w, 'empty.csv'), '--out', R(w, 'new'), *TINY_LM], r'empty.csv'),
    ('finetune-lm folder named csv', lambda w: ['finetune-lm', R(w, 'folder.csv'), '--out', R(w, 'new'), *TINY_LM], r'folder.csv'),
    ('finetune-lm binary text', lambda w: ['finetune-lm', R(w, 'binary.txt'), '--out', R(w, 'new'), *TINY_LM], r'binary.txt looks like a binary file'),
    ('finetune-lm bs above tokens', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), *TINY_LM, '--bs', '50000'], r'--bs 50000'),
    ('finetune-lm out is a file', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'notes.md')], r'--out .*notes.md is a file'),
    ('finetune-lm finished run', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'lm'), '--epochs', '1', *TINY_LM], r'lm/bundle already exists.*--overwrite'),
    ('finetune-lm other settings', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'stale'), '--epochs', '3', *TINY_LM], r'stale/checkpoints holds checkpoints of an unfinished run \(1 epoch\(s\) done\) with other settings \(epochs: 2 then, 3 now\).*--no-resume'),
    ('finetune-lm no-resume over checkpoints', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'stale'), '--epochs', '2', '--no-resume', *TINY_LM, '--lr', '-1'], r'--lr -1.0 is out of range'),
    ('finetune-lm damaged checkpoints', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'damaged'), *TINY_LM], r'damaged/checkpoints holds checkpoints .* none of them loads.*--no-resume'),
    ('finetune-lm interrupted', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), *TINY_LM], r'interrupted; no epoch had finished, so nothing was kept', 130,
     lambda m: m.setattr('ulmfit_ext.pipeline.lm_dls', _ctrl_c)),
    ('finetune-lm interrupted while resuming', lambda w: ['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'stale'), '--epochs', '2', *TINY_LM],
     r'interrupted; the 1 finished epoch\(s\) are kept in .*stale/checkpoints: run the same command again to resume \(--no-resume starts afresh\)', 130,
     lambda m: m.setattr('ulmfit_ext.pipeline.lm_dls', _ctrl_c)),
    ('train-classifier interrupted', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), *TINY_CLAS], r'interrupted; no epoch had finished', 130,
     lambda m: m.setattr('ulmfit_ext.pipeline.clas_dls', _ctrl_c)),
    ('predict interrupted', lambda w: ['predict', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'p.csv')], r'predict: error: interrupted$', 130,
     lambda m: m.setattr('ulmfit_ext.inference.predict_texts', _ctrl_c)),
    # ---- train-classifier
    ('train-classifier lm not given', lambda w: ['train-classifier', R(w, 'data.csv'), '--out', R(w, 'new')], r'--lm is required'),
    ('train-classifier lm missing', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'nope'), '--out', R(w, 'new')], r'language model .*nope does not exist'),
    ('train-classifier lm empty folder', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'empty_dir'), '--out', R(w, 'new')], r'empty_dir holds no language model bundle'),
    ('train-classifier lm is a classifier', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'clas'), '--out', R(w, 'new')], r'holds a classifier, but a language model or encoder bundle'),
    ('train-classifier label-col', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--label-col', 'topic'], r"no column 'topic'.*--label-col"),
    ('train-classifier valid-col', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--valid-col', 'split'], r"no column 'split'.*--valid-col"),
    ('train-classifier one class', lambda w: ['train-classifier', R(w, 'one_class.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), *TINY_CLAS], r"same class \('pos' in column 'label'\)"),
    ('train-classifier missing labels', lambda w: ['train-classifier', R(w, 'no_label.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), *TINY_CLAS], r"have no label in column 'label'"),
    ('train-classifier epochs 0', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--epochs', '0'], r'--epochs 0 is out of range'),
    ('train-classifier epochs too few', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), *TINY_CLAS, '--epochs', '2'], r'--epochs must be at least 4; got 2.*--variant full\+discr'),
    ('train-classifier lr 0', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--lr', '0'], r'--lr 0.0 is out of range'),
    ('train-classifier lr -0.5', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--lr', '-0.5'], r'--lr -0.5 is out of range'),
    ('train-classifier bs 0', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--bs', '0'], r'--bs 0 is out of range'),
    ('train-classifier bs above rows', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), *TINY_CLAS, '--bs', '500'], r'fewer than --bs 500'),
    ('train-classifier bptt 0', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--bptt', '0'], r'--bptt 0 is out of range'),
    ('train-classifier drop-mult -1', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--drop-mult', '-1'], r'--drop-mult -1.0 is out of range'),
    ('train-classifier valid-pct 2', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--valid-pct', '2'], r'--valid-pct 2.0 is out of range'),
    ('train-classifier schedule', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--schedule', 'weekly'], r"--schedule weekly is not one of 'paper', 'scripts'"),
    ('train-classifier variant', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--variant', 'ulmfit2'], r"--variant ulmfit2 is not one of .*Did you mean 'ulmfit'"),
    ('train-classifier keep', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--keep', 'first'], r"--keep first is not one of"),
    ('train-classifier patience -3', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--patience', '-3'], r'--patience -3 is below 0'),
    ('train-classifier pinned', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--expect-sha256', '0'*64], r'language model .*lm is not the one expected: --expect-sha256 is 0{64}'),
    ('train-classifier pin malformed', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), '--expect-sha256', 'xyz'], r"--expect-sha256 'xyz' is not a sha256 digest"),
    ('train-classifier encoding', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), *TINY_CLAS, '--encoding', 'utf-42'], r'--encoding utf-42'),
    ('train-classifier latin-1', lambda w: ['train-classifier', R(w, 'latin1.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), *TINY_CLAS], r'latin1.csv is not valid utf-8: line \d+.*--encoding'),
    ('train-classifier out is a file', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'notes.md')], r'--out .*notes.md is a file'),
    ('train-classifier finished run', lambda w: ['train-classifier', R(w, 'data.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'clas'), *TINY_CLAS], r'clas/bundle already exists.*--overwrite'),
    ('train-classifier folder as data', lambda w: ['train-classifier', R(w, 'folder.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new'), *TINY_CLAS], r'folder.csv is a folder, not a CSV file'),
    ('train-classifier data missing', lambda w: ['train-classifier', R(w, 'nope.csv'), '--lm', R(w, 'lm'), '--out', R(w, 'new')], r'The data .*nope.csv does not exist'),
    # ---- predict
    ('predict model missing', lambda w: ['predict', R(w, 'nope'), R(w, 'data.csv'), '--out', R(w, 'p.csv')], r'The classifier .*nope does not exist'),
    ('predict model is an LM', lambda w: ['predict', R(w, 'lm'), R(w, 'data.csv'), '--out', R(w, 'p.csv')], r'lm.* is a language model'),
    ('predict data missing', lambda w: ['predict', R(w, 'clas'), R(w, 'nope.csv'), '--out', R(w, 'p.csv')], r'The input file .*nope.csv does not exist'),
    ('predict out not csv', lambda w: ['predict', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'p.json')], r'--out .*p.json must be a file name ending in .csv'),
    ('predict out exists', lambda w: ['predict', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'preds.csv')], r'preds.csv already exists.*--overwrite'),
    ('predict out is a folder', lambda w: ['predict', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'folder.csv'), '--overwrite'], r'--out .*folder.csv is a folder'),
    ('predict no out', lambda w: ['predict', R(w, 'clas'), R(w, 'data.csv')], r'--out is required'),
    ('embed out not npy', lambda w: ['embed', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'e.txt')], r'--out .*e.txt must end in .npy'),
    ('embed out exists', lambda w: ['embed', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'preds.csv')], r'preds.csv already exists.*--overwrite'),
    ('embed model missing', lambda w: ['embed', R(w, 'nope'), R(w, 'data.csv'), '--out', R(w, 'e.npy')], r'The model .*nope does not exist'),
    ('explain model is an LM', lambda w: ['explain', R(w, 'lm'), R(w, 'data.csv'), '--out', R(w, 'ex'), '--max-texts', '200'], r'lm.* is a language model'),
    ('explain too many texts', lambda w: ['explain', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'ex'), '--max-texts', '1'], r'more than --max-texts 1'),
    ('explain no out', lambda w: ['explain', R(w, 'clas'), R(w, 'data.csv')], r'--out is required'),
    ('predict text-col', lambda w: ['predict', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'p.csv'), '--text-col', 'body'], r"no column 'body'.*--text-col"),
    ('predict blank text file', lambda w: ['predict', R(w, 'clas'), R(w, 'blank.txt'), '--out', R(w, 'p.csv')], r'blank.txt holds no text'),
    ('predict bs 0', lambda w: ['predict', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'p.csv'), '--bs', '0'], r'--bs 0 is out of range'),
    ('predict pinned', lambda w: ['predict', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'p.csv'), '--expect-sha256', '1'*64], r'clas/bundle is not the one expected'),
    ('predict pin malformed', lambda w: ['predict', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'p.csv'), '--expect-sha256', 'sha256:12'], r"--expect-sha256 'sha256:12' is not a sha256 digest"),
    ('predict edited config', lambda w: ['predict', R(w, 'edited_cfg'), R(w, 'data.csv'), '--out', R(w, 'p.csv')], r"edited_cfg/config.json lacks the key 'awd_lstm'"),
    ('predict edited tokenizer', lambda w: ['predict', R(w, 'edited_tok'), R(w, 'data.csv'), '--out', R(w, 'p.csv')], r"edited_tok/tokenizer.json lacks the key 'rules'"),
    ('predict ensemble escapes', lambda w: ['predict', R(w, 'badens'), R(w, 'data.csv'), '--out', R(w, 'p.csv')], r"fwd member '../clas/bundle', which is not a sub-folder"),
    ('predict latin-1', lambda w: ['predict', R(w, 'clas'), R(w, 'latin1.csv'), '--out', R(w, 'p.csv')], r'latin1.csv'),
    ('predict binary text', lambda w: ['predict', R(w, 'clas'), R(w, 'binary.txt'), '--out', R(w, 'p.csv')], r'binary.txt'),
    # ---- evaluate
    ('evaluate txt file', lambda w: ['evaluate', R(w, 'clas'), R(w, 'texts.txt'), '--out', R(w, 'new')], r'texts.txt is not a CSV file: evaluate needs labelled texts'),
    ('evaluate unknown labels', lambda w: ['evaluate', R(w, 'clas'), R(w, 'other_labels.csv'), '--out', R(w, 'new')], r"labels the classifier was not trained on: \['positive'\].*--label-col"),
    ('evaluate missing labels', lambda w: ['evaluate', R(w, 'clas'), R(w, 'no_label.csv'), '--out', R(w, 'new')], r"1 rows of .*no_label.csv have no label in column 'label'"),
    ('evaluate label-col', lambda w: ['evaluate', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'new'), '--label-col', 'topic'], r"no column 'topic'.*--label-col"),
    ('evaluate out is a file', lambda w: ['evaluate', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'notes.md')], r'--out .*notes.md is a file'),
    ('evaluate out exists', lambda w: ['evaluate', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'eval')], r'eval/metrics.json already exists.*--overwrite'),
    ('evaluate pinned', lambda w: ['evaluate', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'new'), '--expect-sha256', 'e'*64], r'is not the one expected'),
    ('evaluate bs 0', lambda w: ['evaluate', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'new'), '--bs', '0'], r'--bs 0 is out of range'),
    ('evaluate data missing', lambda w: ['evaluate', R(w, 'clas'), R(w, 'nope.csv'), '--out', R(w, 'new')], r'The data .*nope.csv does not exist'),
    # ---- demo
    ('demo out is a file', lambda w: ['demo', '--out', R(w, 'notes.md'), '--preset', 'tiny'], r'--out .*notes.md is a file'),
    ('demo out exists', lambda w: ['demo', '--out', R(w, 'eval'), '--preset', 'tiny'], r'eval/metrics.json already exists.*--overwrite'),
    ('demo preset', lambda w: ['demo', '--out', R(w, 'new'), '--preset', 'huge'], r"--preset huge is not one of 'small', 'tiny'"),
    ('demo seed', lambda w: ['demo', '--out', R(w, 'new'), '--seed', '-4'], r'--seed -4 is out of range'),
    ('demo stage1 not a bundle', lambda w: ['demo', '--out', R(w, 'new'), '--preset', 'tiny', '--stage1', R(w, 'empty_dir')], r'--stage1 .*empty_dir is not a ulmfit_ext bundle folder'),
    ('demo corpus missing', lambda w: ['demo', '--out', R(w, 'new'), '--preset', 'tiny', '--offline', '--corpus', R(w, 'nope.txt')], r'--corpus .*nope.txt does not exist'),
    # ---- build-corpus
    ('build-corpus no out', lambda w: ['build-corpus'], r'--out is required'),
    ('build-corpus unknown source', lambda w: ['build-corpus', '--out', R(w, 'new'), '--sources', R(w, 'nope.txt')], r'neither a shared source'),
    ('build-corpus valid-pct 0', lambda w: ['build-corpus', '--out', R(w, 'new'), '--sources', R(w, 'corpus.txt'), '--valid-pct', '0'], r'--valid-pct 0.0'),
    ('build-corpus max-chars 0', lambda w: ['build-corpus', '--out', R(w, 'new'), '--sources', R(w, 'corpus.txt'), '--max-chars', '0'], r'--max-chars 0'),
    ('build-corpus shippable own text', lambda w: ['build-corpus', '--out', R(w, 'new'), '--sources', R(w, 'corpus.txt'), '--shippable'], r'--shippable'),
    ('build-corpus out exists', lambda w: ['build-corpus', '--out', R(w, 'eval'), '--sources', R(w, 'corpus.txt')], r'--overwrite'),
    # ---- the command itself
    ('no subcommand', lambda w: [], r'no subcommand given'),
    ('unknown subcommand', lambda w: ['train', R(w, 'data.csv')], r"unknown subcommand 'train'"),
]

def _ctrl_c(*a, **k): raise KeyboardInterrupt()

@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_bad_cli_input(w, case, capsys, monkeypatch):
    _, make, msg, *rest = case
    code_want, patch = (rest + [2, None][len(rest):])[:2]
    argv = make(w)
    if patch: patch(monkeypatch)
    before = _snapshot(w['root'])
    code, err = _call(argv, capsys)
    print(f"MSG {case[0]} | {err.strip()}")
    assert code == code_want, (code, err)
    _check_line(argv[0] if argv and argv[0] in subcommands else '', err, msg)
    after = _snapshot(w['root'])
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"existing files changed or removed: {changed}"
    assert set(after) == set(before), f"left behind: {sorted(set(after) - set(before))}"

def test_table_covers_every_subcommand():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)
    subs = {c[1]({'root': '/x'})[0] for c in CASES if c[1]({'root': '/x'})}
    assert set(subcommands) - {'serve'} <= subs, set(subcommands) - subs

# ---------------------------------------------------------------- what no table row can show

def _script(args, w, timeout=300, **env):
    "Run the installed `ulmfit` script as a separate process (this checkout first on the path)"
    if not ULMFIT.exists(): pytest.skip(f"{ULMFIT} is not installed: run `pip install -e .` in this environment")
    e = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(Path(cli.__file__).parent.parent), **env)
    return subprocess.run([str(ULMFIT), *map(str, args)], capture_output=True, text=True, env=e, cwd=w['root'], timeout=timeout)

SCRIPT_CASES = ['pretrain lr 0', 'finetune-lm epochs 0', 'train-classifier epochs too few', 'predict out exists', 'evaluate txt file', 'demo out is a file']

@pytest.mark.parametrize('name', SCRIPT_CASES)
def test_bad_input_through_the_script(w, name):
    "A few rows again through the real console script: what reaches the terminal (import noise, warnings) is one line too"
    _, make, msg, *_ = next(c for c in CASES if c[0] == name)
    argv = make(w)
    before = _snapshot(w['root'])
    r = _script(argv, w)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    _check_line(argv[0], r.stderr, msg)
    assert _snapshot(w['root']) == before

def test_unexpected_error_is_one_line_with_a_log(w, capsys, monkeypatch):
    "Anything the package did not foresee: exit 1, one line naming the exception, where it came from and the log holding the traceback"
    import ulmfit_ext.pipeline as P
    def boom(*a, **k): raise RuntimeError("shape '[8, -1]' is invalid for input of size 3")
    monkeypatch.setattr(P, 'stage2', boom)
    code, err = _call(['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new'), *TINY_LM], capsys)
    assert code == 1
    line = _check_line('finetune-lm', err, r"unexpected RuntimeError in ulmfit_finetune_lm \(cli_train.py:\d+\): shape '\[8, -1\]' is invalid")
    assert 'smaller --bs, --bptt, --emb-sz, --n-hid, --n-layers may help' in line   # a message about sizes names the options that set them
    log = Path(re.search(r'the full traceback is in (\S+) ', line).group(1))
    text = log.read_text()
    assert 'Traceback (most recent call last)' in text and 'RuntimeError' in text and 'finetune-lm' in text.splitlines()[0]
    assert log.parent == w['cache']/'logs'
    monkeypatch.setenv('ULMFIT_TRACEBACK', '1')   # the way to see it on the terminal
    with pytest.raises(RuntimeError, match='is invalid'): main(['finetune-lm', R(w, 'data.csv'), '--out', R(w, 'new')])
    assert not (w['root']/'new').exists()

def test_os_error_is_one_line(w, capsys, monkeypatch):
    "A file that cannot be written (a full disk): exit 2, one line with the reason and the file"
    import ulmfit_ext.inference as I
    def full(*a, **k): raise OSError(28, 'No space left on device', R(w, 'p.csv'))
    monkeypatch.setattr(I, 'predict_texts', full)
    code, err = _call(['predict', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'p.csv')], capsys)
    assert code == 2
    _check_line('predict', err, r'No space left on device: .*p.csv \(details in .*\.log\)')

def test_warnings_are_one_line_each(w, capsys, monkeypatch):
    "A library warning reaches the terminal as one line, in the command's words"
    import warnings, ulmfit_ext.inference as I
    def warn(*a, **k):
        warnings.warn("The validation rows have no example of class(es) ['x']: hold out more rows (`valid_pct`) or mark some with `valid_col`.")
        warnings.warn("torch.jit.script is deprecated", DeprecationWarning)   # other libraries' notices are hidden
        raise KeyboardInterrupt()
    monkeypatch.setattr(I, 'predict_texts', warn)
    code, err = _call(['predict', R(w, 'clas'), R(w, 'data.csv'), '--out', R(w, 'p.csv')], capsys)
    assert code == 130
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith('ulmfit predict: warning: The validation rows') and '(--valid-pct)' not in lines[0], lines
    assert lines[1] == 'ulmfit predict: error: interrupted'

@pytest.mark.parametrize('when', ['while predicting', 'while writing'])
def test_predict_two_writers_one_refused(w, capsys, monkeypatch, when):
    "Item 5: another run writes --out after this one started: this one is refused (at the rename, if it was already writing), the other's file stays"
    import ulmfit_ext.cli as C
    out, other = w['root']/'race.csv', 'text,label\nthe other run,pos\n'
    if when == 'while predicting':
        real = C._predict
        def slow(*a, **k):
            df = real(*a, **k); out.write_text(other); return df
        monkeypatch.setattr(C, '_predict', slow)
    else:
        real = pd.DataFrame.to_csv
        def slow(self, path, *a, **k):
            res = real(self, path, *a, **k); out.write_text(other); return res   # published between our write and our rename
        monkeypatch.setattr(pd.DataFrame, 'to_csv', slow)
    try:
        code, err = _call(['predict', R(w, 'clas'), R(w, 'texts.txt'), '--out', out], capsys)
        assert code == 2
        _check_line('predict', err, r'race.csv already exists .*--overwrite' + (r'' if when == 'while predicting' else r'.*') )
        if when == 'while writing': assert 'another run may have written it since this one started' in err
        assert out.read_text() == other and not list(w['root'].glob('.race.csv*'))
    finally: out.unlink(missing_ok=True)

def test_predict_two_processes_same_out(w, tmp_path):
    "Item 5, for real: two `ulmfit predict` processes started together on one --out: exactly one succeeds, the other exits 2 in one line"
    if not ULMFIT.exists(): pytest.skip(f"{ULMFIT} is not installed")
    out = tmp_path/'p.csv'
    e = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(Path(cli.__file__).parent.parent))
    procs = [subprocess.Popen([str(ULMFIT), 'predict', R(w, 'clas'), R(w, 'data.csv'), '--out', str(out)], env=e, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    res = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs: p.stdout.close(); p.stderr.close()
    assert sorted(c for c, _ in res) == [0, 2], res
    _check_line('predict', next(err for c, err in res if c == 2), r'p.csv already exists.*--overwrite')
    assert len(pd.read_csv(out)) == 120 and [p.name for p in tmp_path.iterdir()] == ['p.csv']   # one complete file, no temporary one

def test_digests_printed_and_pinned(w, capsys):
    "Each run prints the digest of the bundle it saved (bundle_sha256 in metrics.json); --expect-sha256 with it loads that model"
    m = json.loads((w['root']/'clas'/'metrics.json').read_text())
    assert w['digest'] == m['bundle_sha256'] == __import__('ulmfit_ext.bundle', fromlist=['bundle_digest']).bundle_digest(w['root']/'clas'/'bundle')
    out = w['root'].parent/'pinned.csv'
    try:
        assert _call(['predict', R(w, 'clas'), R(w, 'texts.txt'), '--out', out, '--expect-sha256', 'SHA256:' + w['digest'].upper()], capsys)[0] == 0
        assert len(pd.read_csv(out)) == 5
    finally: out.unlink(missing_ok=True)
    lm = json.loads((w['root']/'lm'/'metrics.json').read_text())
    from ulmfit_ext.cli_train import _stage_lm
    assert _stage_lm(w['root']/'lm', lm['bundle_sha256']) == w['root']/'lm'/'bundle'     # the LM's printed digest picks the LM bundle
    assert _stage_lm(w['root']/'lm', lm['encoder_sha256']) == w['root']/'lm'/'encoder'

def test_pretrain_deterministic_and_demo_offline_reach_the_library(w, capsys, monkeypatch):
    "--deterministic (pretrain) is `pretrain_lm(deterministic=True)`; demo --offline is `find_stage1(allow_download=False)`"
    import ulmfit_ext.pretrain as PT, ulmfit_ext.demo as D
    from ulmfit_ext.core import UlmfitError
    seen = {}
    def stop(**k): seen.update(k); raise UlmfitError('stopped here')
    monkeypatch.setattr(PT, 'pretrain_lm', lambda *a, **k: stop(**k))
    assert _call(['pretrain', R(w, 'corpus.txt'), '--out', R(w, 'new'), '--deterministic'], capsys)[0] == 2 and seen['deterministic'] is True
    monkeypatch.setattr(D, 'load_bbc_news', lambda *a, **k: toy_df(60).assign(split='train'))
    monkeypatch.setattr(D, 'find_stage1', lambda **k: stop(**k))
    assert _call(['demo', '--out', R(w, 'new'), '--preset', 'tiny', '--offline'], capsys)[0] == 2 and seen['allow_download'] is False
    assert not (w['root']/'new').exists()
