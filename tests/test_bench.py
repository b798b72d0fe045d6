"The benchmark scripts run end to end (slow): BENCH_SMOKE shrinks the data, epochs and Stage-1 LM, so this checks the scripts, not the results."
import json, os, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

def _run(script, args, tmp_path, timeout=2400):
    env = dict(os.environ, BENCH_SMOKE='1', BENCH_RESULTS=str(tmp_path/'results'), ULMFIT_CACHE=str(tmp_path/'cache'), OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, str(ROOT/'bench'/script), '--threads', '1', *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r

def _errors(md, row):
    "The numbers in the table row that starts with `row`"
    line = next(l for l in md.splitlines() if l.startswith(f'| {row} |'))
    return [float(x) for x in re.findall(r'\b\d+\.\d+\b', line)]

@pytest.fixture
def shared_all(shared_dataset):
    for name in ('trec6', 'gutenberg_books'): shared_dataset(name)

def test_bench_accuracy_smoke(tmp_path, shared_all):
    _run('bench_accuracy.py', ['--data', 'trec6', '--quick', '--skip', 'minilm'], tmp_path)
    res = tmp_path/'results'
    md = (res/'accuracy_trec6_quick.md').read_text()
    assert 'SMOKE TEST' in md and (res/'accuracy_trec6_quick.png').stat().st_size > 1000
    for row in ('ulmfit fwd', 'ulmfit bwd', 'ulmfit fwd+bwd', 'fastai stock', 'scratch', 'tfidf'):
        err = _errors(md, row)[0]; assert 0 <= err <= 100, (row, err)
    j = json.loads((res/'accuracy_trec6_quick.json').read_text())
    assert len(j['results']['ulmfit fwd']) == 1 and 0 <= j['results']['tfidf'][0]['test_acc'] <= 1

def test_bench_ablations_and_lowshot_smoke(tmp_path, shared_all):
    _run('bench_ablations.py', ['--quick'], tmp_path)
    md = (tmp_path/'results'/'ablations_trec6_quick.md').read_text()
    for row, paper in (('chain-thaw', 6.71), ('freez+cos', 6.38), ('without pretraining', 10.67)):
        assert _errors(md, row)[-1] == paper    # the paper's TREC-6 column sits beside ours
    _run('bench_lowshot.py', ['--quick'], tmp_path)
    md = (tmp_path/'results'/'lowshot_trec6_quick.md').read_text()
    assert '| 100 |' in md and (tmp_path/'results'/'lowshot_trec6_quick.png').exists()

def test_bench_defaults_smoke(tmp_path, shared_all, shared_dataset):
    shared_dataset('sms_spam')
    _run('bench_defaults.py', ['--data', 'sms_spam', '--seeds', '1'], tmp_path)
    md = (tmp_path/'results'/'defaults.md').read_text()
    assert 'SMOKE TEST' in md
    row = next(l for l in md.splitlines() if l.startswith('| sms_spam |'))
    accs = [float(x) for x in re.findall(r'\b\d+\.\d+\b', row)][:3]   # TF-IDF, defaults, old defaults
    assert all(0 <= a <= 100 for a in accs), row
    raw = json.loads((tmp_path/'results'/'defaults.raw.json').read_text())['sms_spam']
    assert raw['defaults'][0]['lr_source'] == 'head_lr' and raw['old']['lr_source'] == 'given' and len(raw['grid']) == 1

def _script(script, args, tmp_path, timeout=900):
    "Run a bench script with BENCH_SMOKE and its results in tmp_path; the CompletedProcess"
    env = dict(os.environ, BENCH_SMOKE='1', BENCH_RESULTS=str(tmp_path/'results'), ULMFIT_CACHE=str(tmp_path/'cache'), OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, str(ROOT/'bench'/script), *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r

def test_bench_inference_scripts_smoke(tmp_path, shared_dataset):
    "Issue 15's scripts (profile, int8, tokenizer workers, generation, load) run end to end on tiny inputs and write their tables"
    for name in ('imdb_aclImdb', 'imdb_sample', 'trec6'): shared_dataset(name)
    res = tmp_path/'results'
    _script('bench_profile.py', ['--n', '60', '--n-paper', '3', '--div2', '3'], tmp_path)
    md = (res/'profile.md').read_text()
    assert md.count('| small 64/128/2 |') == 6 and md.count('| paper 400/1152/3 |') == 6 and 'Agreement' in md
    _script('bench_int8.py', [], tmp_path)
    md = (res/'int8.md').read_text()
    assert 'SMOKE TEST' in md and md.count('| trec6 |') == 6 and 'int8' in md
    _script('bench_tok_workers.py', ['--n', '600'], tmp_path)
    assert (res/'tok_workers.md').read_text().count('\n| ') >= 3
    _script('bench_generation.py', ['--quick', '--vocab', '500'], tmp_path)
    assert 'Speed-up' in (res/'generation_quick.md').read_text()
    _script('bench_serve.py', ['--quick'], tmp_path)
    rows = json.loads((res/'serve.json').read_text())
    assert rows[0]['errors'] == 0 and rows[0]['malformed_4xx'] == rows[0]['malformed'] and rows[0]['exit_code'] == 0

def test_bench_memory_smoke(tmp_path, shared_dataset):
    "Issue 14's memory benchmark runs `ulmfit pretrain` at two corpus sizes and writes a row for each, measured from the process tree"
    shared_dataset('gutenberg_books')
    _script('bench_memory.py', ['--words', '3000', '--sizes', '1,2'], tmp_path)
    rows = json.loads((tmp_path/'results'/'memory.json').read_text())
    assert [r['size'] for r in rows] == [1, 2] and rows[1]['words'] == 2*rows[0]['words']
    assert all(r['max_process_mb'] > 50 and r['tree_peak_mb'] >= 0.5*r['max_process_mb'] and r['train_tokens'] for r in rows), rows
