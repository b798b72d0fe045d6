"Document embeddings and token attributions: the library calls and `ulmfit embed` / `ulmfit explain`, on a toy task whose label is set by one word"
import random, json
import numpy as np, pandas as pd, pytest, torch
from ulmfit_ext.core import UlmfitError
from ulmfit_ext.test_utils import tiny_cfg
from ulmfit_ext.pipeline import stage2, stage3
from ulmfit_ext.bundle import save_classifier_bundle
from ulmfit_ext.inference import predict_probs, predict_texts
from ulmfit_ext.embed import embed_texts
from ulmfit_ext.cli import main

def one_word_df(n=240, seed=0):
    "Filler words, with 'great' once in each positive text and 'awful' once in each negative one"
    rng = random.Random(seed)
    filler = 'the a movie film plot actor scene was is and it very story music long we saw'.split()
    rows = []
    for i in range(n):
        lbl = ('pos', 'neg')[i % 2]
        w = [rng.choice(filler) for _ in range(rng.randint(6, 20))]
        w.insert(rng.randint(0, len(w)), 'great' if lbl == 'pos' else 'awful')
        rows.append((' '.join(w), lbl, i >= n * 4 // 5))
    return pd.DataFrame(rows, columns=['text', 'label', 'is_valid'])

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    df = one_word_df()
    lm = stage2(df, None, config=tiny_cfg, epochs=2, bs=8, bptt=10, min_freq=1, progress=False, seed=0)
    run = stage3(df, lm, valid_col='is_valid', epochs=10, lr=0.05, bs=8, bptt=10, progress=False, seed=0)
    d = tmp_path_factory.mktemp('ee')
    save_classifier_bundle(run.learn, d/'clas'/'bundle')
    df.to_csv(d/'data.csv', index=False)
    return df, lm, run, d

def _nn_agreement(E, y):
    X = E / np.linalg.norm(E, axis=1, keepdims=True)
    S = X @ X.T; np.fill_diagonal(S, -np.inf)
    return float((y[S.argmax(1)] == y).mean())

def test_embeddings_are_what_the_head_reads_and_neighbours_share_labels(trained):
    df, lm, run, d = trained
    va = df[df.is_valid]
    assert run.report.best['accuracy'] > 0.9   # the toy task was learnt
    E = embed_texts(run.learn, va.text.tolist(), progress=False)
    assert E.shape == (len(va), 3 * tiny_cfg['emb_sz']) and E.dtype == np.float32
    with torch.no_grad(): logits = run.learn.model[1].layers(torch.tensor(E))
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), predict_probs(run.learn, va.text.tolist(), progress=False), atol=1e-5)
    y = va.label.values
    chance = float(sum((y == c).mean() ** 2 for c in set(y)))
    assert _nn_agreement(E, y) > chance + 0.3
    np.testing.assert_allclose(embed_texts(d/'clas'/'bundle', va.text, progress=False), E, atol=1e-5)
    np.testing.assert_array_equal(embed_texts(run.learn, va.text.tolist(), pool='max', progress=False), E[:, 20:40])
    shuffled = va.text.sample(frac=1, random_state=1)
    order = [list(va.index).index(i) for i in shuffled.index]
    np.testing.assert_allclose(embed_texts(run.learn, shuffled, bs=3, progress=False), E[order], atol=1e-5)
    assert embed_texts(lm.learn, va.text.tolist(), progress=False).shape == E.shape
    with pytest.raises(UlmfitError, match="'concat' is what the classifier head reads"): embed_texts(run.learn, ['a'], pool='avg')

def test_the_signal_word_gets_the_highest_attribution(trained):
    from ulmfit_ext.explain import explain_texts, explain_text
    df, lm, run, d = trained
    va = df[df.is_valid]
    atts = explain_texts(run.learn, va.text, progress=False)
    assert [a.top(1).token.iloc[0] for a in atts] == ['great' if l == 'pos' else 'awful' for l in va.label]
    assert [a.target for a in atts] == predict_texts(run.learn, va.text, progress=False).label.tolist()
    for a in atts: assert abs(a.scores.sum() - (a.value - a.baseline_value)) < 0.02   # completeness
    other = explain_text(d/'clas'/'bundle', va.text.iloc[0], target='neg' if atts[0].target == 'pos' else 'pos')
    assert other.frame.score.idxmin() == atts[0].frame.score.idxmax()
    with pytest.raises(UlmfitError, match="is not an output of the model"): explain_text(run.learn, va.text.iloc[0], target='maybe')
    with pytest.raises(UlmfitError, match="is a language model"): explain_texts(lm.learn, ['a'])

def _call(args, capsys):
    capsys.readouterr()
    try: main([str(a) for a in args]); code = 0
    except SystemExit as e: code = e.code
    return code, capsys.readouterr()

def test_cli_embed_and_explain(trained, capsys):
    df, lm, run, d = trained
    df[df.is_valid].head(4).to_csv(d/'few.csv', index=False)
    code, o = _call(['embed', d/'clas', d/'few.csv', '--out', d/'e.npy'], capsys)
    assert code == 0 and '4 vectors of 60 numbers (concat pooling)' in o.out
    np.testing.assert_allclose(np.load(d/'e.npy'), embed_texts(run.learn, df[df.is_valid].head(4).text.tolist(), progress=False), atol=1e-5)
    before = (d/'e.npy').read_bytes()
    code, o = _call(['embed', d/'clas', d/'few.csv', '--out', d/'e.npy'], capsys)
    assert code == 2 and 'already exists' in o.err and (d/'e.npy').read_bytes() == before
    code, o = _call(['embed', d/'clas', d/'few.csv', '--out', d/'e.txt'], capsys)
    assert code == 2 and 'must end in .npy' in o.err
    code, o = _call(['explain', d/'clas', d/'few.csv', '--out', d/'ex'], capsys)
    assert code == 0, o.err
    assert sorted(p.name for p in (d/'ex').iterdir()) == ['attributions.csv', 'explain.html', *[f'text_{i}.png' for i in range(4)]]
    a = pd.read_csv(d/'ex'/'attributions.csv')
    top = a.loc[a.groupby('text').score.idxmax()]
    assert top.token.tolist() == ['great' if l == 'pos' else 'awful' for l in df[df.is_valid].head(4).label]
    assert 'great' in (d/'ex'/'explain.html').read_text() or 'awful' in (d/'ex'/'explain.html').read_text()
    code, o = _call(['explain', d/'clas', d/'few.csv', '--out', d/'ex'], capsys)
    assert code == 2 and 'already exists' in o.err
    code, o = _call(['explain', d/'clas', d/'few.csv', '--out', d/'ex2', '--max-texts', '2'], capsys)
    assert code == 2 and 'more than --max-texts 2' in o.err and not (d/'ex2').exists()

def test_cli_embed_to_parquet(trained, capsys):
    pytest.importorskip('pyarrow', reason='.parquet output needs pyarrow (the development environment has it)')
    df, lm, run, d = trained
    df[df.is_valid].head(4).to_csv(d/'few4.csv', index=False)
    code, o = _call(['embed', d/'clas', d/'few4.csv', '--out', d/'e.parquet', '--pool', 'mean'], capsys)
    t = pd.read_parquet(d/'e.parquet')
    assert code == 0 and list(t.columns) == ['text', *[f'e{i}' for i in range(20)]] and t.text.tolist() == df[df.is_valid].head(4).text.tolist()
    np.testing.assert_allclose(t.iloc[:, 1:].values, embed_texts(run.learn, t.text.tolist(), pool='mean', progress=False), atol=1e-5)
