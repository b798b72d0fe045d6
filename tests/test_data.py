"Tests of `ulmfit_ext.data` (corpus readers, tokenize-once cache, LM/classifier DataLoaders, variable-length BPTT) in both environments."
import bz2, gzip, lzma, pickle, random, re, tarfile, time, warnings, zipfile
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from fastai.text.all import (AWD_LSTM, BaseTokenizer, LMDataLoader, awd_lstm_lm_config, awd_lstm_clas_config, defaults,
                             language_model_learner, text_classifier_learner, load_learner, Tokenizer, TextBlock, DataBlock, ColReader, RandomSplitter)
from ulmfit_ext.core import UlmfitError
from ulmfit_ext.data import *
from ulmfit_ext.data import _random_valid, _token_ids
from ulmfit_ext.readers import *
from ulmfit_ext.tokens import *

FAST = dict(progress=False, n_workers=0)

@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    "Every test gets its own empty cache root"
    monkeypatch.setenv('ULMFIT_CACHE', str(tmp_path/'cache'))

def toy_texts(n, seed=0):
    rng = random.Random(seed)
    words = "the a movie film was great awful good bad plot acting actor story boring fun loved hated it and but so very".split()
    return [' '.join(rng.choice(words) for _ in range(rng.randint(8, 30))).capitalize() + '.' for _ in range(n)]

@pytest.fixture
def toy_df(): return pd.DataFrame({'text': toy_texts(60), 'label': ['pos', 'neg']*30})

class CountingTok(BaseTokenizer):
    "Counts the texts it tokenizes"
    def __init__(self, counter, **kw): super().__init__(**kw); self._counter = counter   # private: not a setting in the cache key
    def __call__(self, items):
        items = list(items); self._counter.append(len(items)); return super().__call__(items)

# ---------------------------------------------------------------- readers
UTF8, LATIN1 = "Première ligne.\n\nSecond paragraph, naïve.\n", "Café crème, déjà vu.\n"

@pytest.fixture
def books(tmp_path):
    d = tmp_path/'books'; (d/'sub').mkdir(parents=True)
    (d/'a.txt').write_text(UTF8, encoding='utf-8')
    (d/'sub'/'b.txt').write_bytes(LATIN1.encode('latin-1'))
    (d/'skip.md').write_text('not text'); (d/'.hidden.txt').write_text('hidden')
    return d

def read_quiet(p, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); return list(read_texts(p, **kw))

def test_folder_utf8_and_latin1(books):
    corpus = read_texts(books)
    with pytest.warns(UserWarning, match='read as latin-1'): docs = list(corpus)
    assert docs == [UTF8, LATIN1]
    assert corpus.notes == {'a.txt': 'utf-8', 'sub/b.txt': 'latin-1'} and 'sub/b.txt' in corpus.note
    assert list(read_texts(books/'sub', encoding='latin-1')) == [LATIN1]
    with pytest.raises(UlmfitError, match='not valid utf-8'): list(read_texts(books/'sub', encoding='utf-8'))

@pytest.mark.parametrize('ext,mode', [('.tar', 'w'), ('.tar.gz', 'w:gz'), ('.tgz', 'w:gz'), ('.tar.xz', 'w:xz'), ('.tar.bz2', 'w:bz2')])
def test_tar_archives(books, tmp_path, ext, mode):
    with tarfile.open(tmp_path/f'c{ext}', mode) as tf: tf.add(books, arcname='books')
    assert read_quiet(tmp_path/f'c{ext}') == [UTF8, LATIN1]

def test_zip_archive(books, tmp_path):
    with zipfile.ZipFile(tmp_path/'c.zip', 'w') as zf:
        for p in [books/'a.txt', books/'sub'/'b.txt', books/'skip.md']: zf.write(p, p.relative_to(tmp_path))
    assert read_quiet(tmp_path/'c.zip') == [UTF8, LATIN1]

@pytest.mark.parametrize('ext,opener', [('.gz', gzip.open), ('.bz2', bz2.open), ('.xz', lzma.open)])
def test_single_compressed_file_and_splits(tmp_path, ext, opener):
    with opener(tmp_path/f'a.txt{ext}', 'wb') as f: f.write(UTF8.encode())
    p = tmp_path/f'a.txt{ext}'
    assert list(read_texts(p)) == [UTF8]
    assert list(read_texts(p, split='para')) == ["Première ligne.\n", "Second paragraph, naïve.\n"]
    assert list(read_texts(p, split='line')) == ["Première ligne.", "Second paragraph, naïve."]

def test_reader_errors(tmp_path):
    with pytest.raises(UlmfitError, match='No such file or folder'): read_texts(tmp_path/'missing.txt')
    (tmp_path/'x.parquet').write_bytes(b'1')
    with pytest.raises(UlmfitError, match="Don't know how to read 'x.parquet'"): read_texts(tmp_path/'x.parquet')
    (tmp_path/'empty.txt').write_text('')
    with pytest.raises(UlmfitError, match='no text'): list(read_texts(tmp_path/'empty.txt'))
    with zipfile.ZipFile(tmp_path/'n.zip', 'w') as zf: zf.writestr('readme.md', 'x')
    with pytest.raises(UlmfitError, match='no text files'): list(read_texts(tmp_path/'n.zip'))
    with pytest.raises(UlmfitError, match='split'): read_texts(tmp_path/'empty.txt', split='words')

def test_reader_streams(tmp_path):
    "Documents come one at a time: the first is available before later files are read"
    d = tmp_path/'d'; d.mkdir()
    for i in range(3): (d/f'{i}.txt').write_text(f'doc {i}')
    it = iter(read_texts(d))
    assert next(it) == 'doc 0'
    (d/'2.txt').write_text('changed')          # not read yet
    assert list(it) == ['doc 1', 'changed']

# ---------------------------------------------------------------- tokenize once
def test_cache_hit_does_not_retokenize(tmp_path):
    calls, texts = [], toy_texts(20)
    st1 = tokenize_corpus(texts, tok=CountingTok(calls), **FAST)
    n = len(calls); assert n >= 1
    st2 = tokenize_corpus(texts, tok=CountingTok(calls), **FAST)
    assert len(calls) == n, 'second call tokenized again'
    assert st2.path == st1.path and st2.path.parent == tmp_path/'cache'/'tokens'
    assert all(st1.tokens(i) == st2.tokens(i) for i in range(20))
    assert not list(st1.path.glob('*.part'))
    tokenize_corpus(texts, tok=CountingTok(calls), rules=[], **FAST)       # other settings: other key
    assert len(calls) > n

def test_cache_false_writes_nothing(tmp_path):
    st = tokenize_corpus(toy_texts(5), cache=False, **FAST)
    assert st.path is None and not (tmp_path/'cache'/'tokens').exists() or not any((tmp_path/'cache'/'tokens').iterdir())

def test_store_layout():
    st = tokenize_corpus(["The cat sat.", "A DOG barked!"], **FAST)
    assert st.ids.dtype == np.uint16 and st.offsets.dtype == np.int64   # issue 14: 2 bytes a token up to 65,536 distinct tokens
    assert st.tokens(0) == ['xxbos', 'xxmaj', 'the', 'cat', 'sat', '.']
    assert st.tokens(1) == ['xxbos', 'a', 'xxup', 'dog', 'barked', '!']
    assert st.lengths.sum() == st.n_tokens == len(st.ids)
    assert pickle.loads(pickle.dumps(st)).tokens(1) == st.tokens(1)

def test_writer_offsets_are_a_compact_array():
    "Issue 14: the writer keeps one 8-byte int64 a document (an `array('q')`), not a Python int object each, and the store gets the same offsets"
    import array, io
    from ulmfit_ext.tokens import _StoreWriter
    w = _StoreWriter(io.BytesIO())
    for i in range(1000): w.add(['xxbos'] + ['tok']*(i % 7), last=i % 2 == 1)   # two pieces a document
    assert isinstance(w.offsets, array.array) and w.offsets.typecode == 'q' and w.offsets.itemsize == 8
    st = w.store(np.frombuffer(w.f.getvalue(), dtype=np.int32))
    assert len(st) == 500 and st.offsets.dtype == np.int64 and st.n_tokens == len(st.ids) == sum(1 + i % 7 for i in range(1000))
    assert st.lengths.tolist() == [2 + i % 7 + (i+1) % 7 for i in range(0, 1000, 2)]

def test_store_on_disk_reads_without_the_memory_map(monkeypatch):
    "Issue 14: `doc`/`read` of a cached store read the file (the memory map's touched pages would stay in the RSS), and give what slicing `ids` gives"
    st = tokenize_corpus(toy_texts(30), **FAST)
    assert st.path is not None and isinstance(st.ids, np.memmap)
    ref = [np.array(st.ids[st.offsets[i]:st.offsets[i+1]]) for i in range(len(st))]
    reads = []
    real = np.fromfile
    monkeypatch.setattr(np, 'fromfile', lambda *a, **k: reads.append(k) or real(*a, **k))
    assert all(np.array_equal(st.doc(i), ref[i]) for i in range(len(st))) and len(reads) == len(st)
    assert reads[3] == dict(dtype=np.uint16, count=len(ref[3]), offset=2*int(st.offsets[3]))
    assert np.array_equal(st.read(0, st.n_tokens), np.asarray(st.ids)) and st.read(5, 5).shape == (0,)
    mem = tokenize_corpus(toy_texts(30), cache=False, **FAST)   # an in-memory store slices its array
    n = len(reads); assert np.array_equal(mem.doc(3), ref[3]) and len(reads) == n

def test_corpus_path_cache_and_encoding_note(books):
    with pytest.warns(UserWarning, match='latin-1'): st = tokenize_corpus(books, **FAST)
    assert st.meta['encodings'] == {'a.txt': 'utf-8', 'sub/b.txt': 'latin-1'}
    assert 'café' in st.tokens(1)
    assert tokenize_corpus(books, **FAST).path == st.path                         # hit, no re-read warning needed
    with pytest.warns(UserWarning, match='latin-1'): assert tokenize_corpus(books, split='para', **FAST).path != st.path

def test_long_documents_and_workers():
    long = ' '.join(['lorem ipsum dolor sit amet'] * 200)
    ref = tokenize_corpus([long, 'short'], cache=False, **FAST)
    pieces = tokenize_corpus([long, 'short'], cache=False, max_chars=300, **FAST)
    assert pieces.tokens(0) == ref.tokens(0) and pieces.tokens(0).count('xxbos') == 1
    mp = tokenize_corpus([long, 'short']*3, cache=False, progress=False, n_workers=2, max_chars=300, chunk_chars=1000)
    assert [mp.tokens(i) for i in range(6)] == [ref.tokens(0), ref.tokens(1)]*3

def test_progress_bar_path(capsys):
    "The default progress bar (fastprogress) runs over the chunks without changing the result"
    texts = toy_texts(30)
    a = tokenize_corpus(texts, cache=False, progress=True, n_workers=0, chunk_chars=200)
    b = tokenize_corpus(texts, cache=False, **FAST)
    assert [a.tokens(i) for i in range(30)] == [b.tokens(i) for i in range(30)]

def test_limits_and_bad_texts():
    assert len(tokenize_corpus(toy_texts(10), max_docs=3, cache=False, **FAST)) == 3
    assert len(tokenize_corpus(toy_texts(10), max_tokens=1, cache=False, **FAST)) == 1
    with pytest.raises(UlmfitError, match='not strings'): tokenize_corpus(['a', float('nan')], **FAST)
    with pytest.raises(UlmfitError, match='empty or blank'): tokenize_corpus(['a', ' '], **FAST)

# ---------------------------------------------------------------- variable-length BPTT
def test_var_bptt_lens_distribution():
    ls = var_bptt_lens(500_000, bptt=70, seed=1)
    assert ls.sum() == 500_000 and ls[0] == 95
    mid = ls[1:-1]
    assert mid.min() >= 5 and mid.max() <= 95 and len(set(mid.tolist())) > 20
    assert abs(mid.mean() - 70) < 0.05*70                    # close to bptt ...
    assert abs(mid.mean() - (0.975*70 - 0.5)) < 0.5          # ... as fastai 0.7's draw predicts
    assert abs((mid < 50).mean() - 0.05) < 0.01
    assert (var_bptt_lens(500_000, seed=1) == ls).all()

def make_dl(**kw):
    return VarLenLMDataLoader([torch.arange(0, 1500), torch.arange(1500, 3000)], bs=3, seq_len=20, **kw)

def test_varlen_loader_stream_continuity():
    dl = make_dl(seed=7)
    n, plan = len(dl), dl.seq_lens.copy()
    b = list(dl)
    assert len(b) == n and [x.shape[1] for x, y in b] == plan.tolist() and len(set(plan.tolist())) > 3
    for x, y in b: assert torch.equal(y, x+1)
    for (x0, _), (x1, _) in zip(b, b[1:]): assert torch.equal(x1[:, 0], x0[:, -1]+1)
    assert torch.equal(torch.cat([x for x, _ in b], 1).flatten(), torch.arange(3*dl.bl))   # no token lost or repeated
    assert 3*dl.bl >= 3000 - 3

def test_varlen_loader_epochs_and_seed():
    dl = make_dl(seed=7)
    e0 = [x.shape[1] for x, _ in dl]; assert len(dl) == len(dl.seq_lens)
    e1 = [x.shape[1] for x, _ in dl]
    assert e0 != e1 and sum(e0) == sum(e1) == dl.bl
    assert [x.shape[1] for x, _ in make_dl(seed=7)] == e0
    nd = dl.new(seq_len=25)
    assert (nd.seed, nd.variable, nd.seq_len) == (7, True, 25)

def test_varlen_fixed_mode_matches_lmdataloader():
    items = [torch.arange(0, 1500), torch.arange(1500, 3000)]
    a, b = list(VarLenLMDataLoader(items, bs=3, seq_len=20, variable=False)), list(LMDataLoader(items, bs=3, seq_len=20))
    assert len(a) == len(b) and all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b))

# ---------------------------------------------------------------- DataLoaders
def test_lm_dls_sources_vocab_and_batches(toy_df, tmp_path):
    toy_df.to_csv(tmp_path/'t.csv', index=False)
    dls = lm_dls(tmp_path/'t.csv', toy_texts(40, seed=1), bs=4, bptt=10, seed=0, **FAST)
    assert len(dls.train_ds) + len(dls.valid_ds) == 100 and len(dls.valid_ds) == 10
    assert dls.vocab[:9] == defaults.text_spec_tok and len(dls.vocab) % 8 == 0
    x, y = dls.one_batch()
    assert x.shape == (4, 10) and x.dtype == torch.int64 and torch.equal(x[:, 1:], y[:, :-1])

def test_lm_dls_reads_backwards(toy_df):
    fwd = lm_dls(toy_df, bs=4, bptt=10, seed=0, **FAST)
    bwd = lm_dls(toy_df, bs=4, bptt=10, seed=0, backwards=True, **FAST)
    assert bwd.vocab == fwd.vocab
    for i in range(3): assert torch.equal(bwd.train_ds[i][0], fwd.train_ds[i][0].flip(0))

def test_lm_dls_var_bptt(toy_df):
    dls = lm_dls(toy_df, bs=2, bptt=8, seed=0, var_bptt=True, **FAST)
    assert isinstance(dls.train, VarLenLMDataLoader) and not dls.valid.variable
    tr = [x.shape[1] for x, _ in dls.train]
    assert len(set(tr)) > 1 and sum(tr) == dls.train.bl
    assert {x.shape[1] for x, _ in dls.valid} <= set(range(1, 9))

def test_lm_dls_small_valid_set_and_store_source():
    dls = lm_dls(toy_texts(5), bs=2, bptt=5, seed=0, **FAST)          # 10% of 5 documents rounds to 0: one is kept
    assert len(dls.valid_ds) == 1 and len(dls.train_ds) == 4
    st = tokenize_corpus(toy_texts(30), max_docs=12, **FAST)
    d = lm_dls(st, bs=2, bptt=5, seed=0, **FAST)
    assert (len(d.train_ds), len(d.valid_ds)) == (11, 1)

def test_lm_dls_errors():
    with pytest.raises(UlmfitError, match='at least 2'): lm_dls(['just one'], **FAST)
    with pytest.raises(UlmfitError, match="Can't read text"): lm_dls(42, **FAST)

def test_clas_dls_reuses_lm_vocab_and_cache(toy_df):
    calls = []
    dls_lm = lm_dls(toy_df, toy_texts(40, seed=1), bs=4, bptt=10, seed=0, tok=CountingTok(calls), **FAST)
    n = len(calls)
    dls = clas_dls(toy_df, vocab=dls_lm, bs=8, bptt=10, seed=0, tok=CountingTok(calls), **FAST)
    assert len(calls) == n, 'the labelled texts were tokenized a second time'
    assert dls.vocab[0] == dls_lm.vocab and list(dls.vocab[1]) == ['neg', 'pos']
    x, y = dls.one_batch()
    assert x.shape[0] == 8 and y.shape == (8,)
    # the same text gets the same ids in both DataLoaders
    assert torch.equal(_token_ids(dls)(5), _token_ids(dls_lm)(5))

def test_info_of_text_dataloaders(toy_df):
    "vocabulary, labels, tokenizer, post-rules, direction and bptt of `lm_dls`/`clas_dls` and of fastai's text DataLoaders"
    def keep(toks): return toks
    post = [keep]
    fwd = lm_dls(toy_df, bs=4, bptt=10, seed=0, tok=BaseTokenizer(), post_rules=post, **FAST)
    i = dls_info(fwd)
    assert (i.vocab, i.labels, i.backwards, i.bptt, i.post_rules) == (list(fwd.vocab), None, False, 10, post)
    assert isinstance(i.tokenizer, Tokenizer) and isinstance(i.tokenizer.tok, BaseTokenizer)
    assert dls_info(lm_dls(toy_df, bs=4, bptt=10, seed=0, tok=BaseTokenizer(), backwards=True, **FAST)).backwards
    c = dls_info(clas_dls(toy_df, vocab=fwd, bs=8, bptt=10, seed=0, backwards=True, **FAST))
    assert (c.vocab, c.labels, c.backwards, c.post_rules) == (list(fwd.vocab), ['neg', 'pos'], True, post)
    tb = TextBlock.from_df('text', is_lm=True, seq_len=10, tok=BaseTokenizer(), n_workers=0)
    fa = DataBlock(blocks=tb, get_x=ColReader('text'), splitter=RandomSplitter(seed=0)).dataloaders(toy_df, bs=4, seq_len=10)
    f = dls_info(fa)
    assert (f.vocab, f.labels, f.post_rules, f.backwards, f.bptt) == (list(fa.vocab), None, None, False, 10)
    assert isinstance(f.tokenizer.tok, BaseTokenizer)
    fa.backwards = True                                       # a `backwards` attribute counts too
    assert dls_info(fa).backwards

def test_clas_dls_errors(toy_df):
    with pytest.raises(UlmfitError, match=r"Column\(s\) \['review'\] not in the DataFrame; its columns are \['text', 'label'\]"):
        clas_dls(toy_df, text_col='review', vocab=None)
    bad = toy_df.copy(); bad.loc[[1, 4, 9], 'label'] = None
    with pytest.raises(UlmfitError, match=r"3 of 60 rows have no label in column 'label'.*dropna"): clas_dls(bad, vocab=None)
    bad = toy_df.astype({'text': object}); bad.loc[2, 'text'] = 7
    with pytest.raises(UlmfitError, match='not strings'): clas_dls(bad, vocab=None)
    bad = toy_df.copy(); bad.loc[2, 'text'] = '   '
    with pytest.raises(UlmfitError, match='empty or blank'): clas_dls(bad, vocab=None)
    with pytest.raises(TypeError, match='vocab'): clas_dls(toy_df)
    with pytest.raises(UlmfitError, match='list of token strings'): clas_dls(toy_df, vocab=5)

def test_clas_dls_valid_col_and_backwards(toy_df):
    df = toy_df.assign(is_valid=[i % 4 == 0 for i in range(60)])
    fwd = clas_dls(df, vocab=None, valid_col='is_valid', bs=4, **FAST)
    bwd = clas_dls(df, vocab=fwd.vocab[0], valid_col='is_valid', bs=4, backwards=True, **FAST)
    assert len(fwd.valid_ds) == 15 and torch.equal(bwd.valid_ds[0][0], fwd.valid_ds[0][0].flip(0))

# ---------------------------------------------------------------- with fastai's learners
TINY = dict(emb_sz=16, n_hid=16, n_layers=2)

def test_learners_train_predict_and_export(toy_df, tmp_path):
    dls_lm = lm_dls(toy_df, bs=4, bptt=10, seed=0, var_bptt=True, **FAST)
    lm = language_model_learner(dls_lm, AWD_LSTM, config={**awd_lstm_lm_config, **TINY}, pretrained=False)
    with lm.no_bar(), lm.no_logging(): lm.fit(2)
    assert lm.recorder.losses and all(np.isfinite(float(l)) for l in lm.recorder.losses)
    dls = clas_dls(toy_df, vocab=dls_lm, bs=8, bptt=10, seed=0, **FAST)
    learn = text_classifier_learner(dls, AWD_LSTM, seq_len=10, config={**awd_lstm_clas_config, **TINY}, pretrained=False)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    with learn.no_bar(): pred = learn.predict('A great movie!')
    assert pred[0] in ('neg', 'pos')
    learn.export(tmp_path/'clas.pkl')
    assert (tmp_path/'clas.pkl').stat().st_size < 5_000_000
    with load_learner(tmp_path/'clas.pkl').no_bar() as l2: assert l2.predict('A great movie!')[0] == pred[0]

# ---------------------------------------------------------------- real data (slow)
@pytest.mark.slow
def test_gutenberg_streams_within_memory(shared_dataset):
    import resource
    src = shared_dataset('gutenberg_books')/'gutenberg_ece451.tar.xz'
    t0 = time.time()
    st = tokenize_corpus(src, max_tokens=2_000_000, progress=False)
    dt = time.time() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024
    print(f'{st}: {dt:.0f} s, {st.n_tokens/dt:,.0f} tokens/s, peak RSS {rss:.0f} MiB')
    assert st.n_tokens >= 2_000_000 and rss < 2000
    t0 = time.time(); assert tokenize_corpus(src, max_tokens=2_000_000, progress=False).path == st.path
    assert time.time() - t0 < 30
    dls = lm_dls(st, bs=64, bptt=70, seed=0, var_bptt=True, progress=False)
    assert len(dls.train) == len(dls.train.seq_lens) and dls.one_batch()[0].shape[0] == 64

# ---------------------------------------------------------------- bad inputs (issue 13)
def test_binary_file_refused(tmp_path):
    "Item 8: a binary file renamed .txt is refused with its name, in a folder, an archive or alone"
    (tmp_path/'d').mkdir(); (tmp_path/'d'/'good.txt').write_text('A fine sentence.\n')
    (tmp_path/'d'/'weights.txt').write_bytes(b'PK\x03\x04' + bytes(range(256)) * 20)
    with pytest.raises(UlmfitError, match=r"d/weights.txt looks like a binary file, not text \(a NUL byte on line 1\)"): list(read_texts(tmp_path/'d'))
    with tarfile.open(tmp_path/'a.tar.gz', 'w:gz') as tf: tf.add(tmp_path/'d', arcname='d')
    with pytest.raises(UlmfitError, match=r"d/weights.txt in .*a.tar.gz looks like a binary file"): list(read_texts(tmp_path/'a.tar.gz'))
    rng = random.Random(1)
    (tmp_path/'noise.txt').write_bytes(bytes(rng.randrange(1, 256) for _ in range(20000)))   # no NUL, but mostly control characters as latin-1
    with pytest.raises(UlmfitError, match='noise.txt looks like a binary file, not text .*control characters'): list(read_texts(tmp_path/'noise.txt'))

def test_latin1_text_still_read_with_a_warning(tmp_path):
    "Real latin-1 (and cp1252 smart quotes) are text, not binary"
    (tmp_path/'old.txt').write_bytes(('Déjà vu, “quoted” – naïve café. ' * 300).encode('cp1252'))
    with pytest.warns(UserWarning, match='read as latin-1'): docs = list(read_texts(tmp_path/'old.txt'))
    assert docs[0].startswith('Déjà vu')

@pytest.mark.parametrize('ext,opener', [('.gz', gzip.open), ('.xz', lzma.open), ('.bz2', bz2.open)])
def test_truncated_compressed_corpus(tmp_path, ext, opener):
    "Item 9: a cut-off .gz/.xz/.bz2 is a one-line error naming the file, not a traceback from the decompressor"
    f = tmp_path/f'corpus.txt{ext}'
    with opener(f, 'wb') as g: g.write(''.join(f'Line {i} of a long book.\n' for i in range(20000)).encode())
    f.write_bytes(f.read_bytes()[:len(f.read_bytes())//2])
    with pytest.raises(UlmfitError, match=rf'corpus.txt{re.escape(ext)} is truncated: it ends in the middle of its compressed data'):
        list(read_texts(f, split='line'))
    with pytest.raises(UlmfitError, match='is truncated'): tokenize_corpus(f, split='line', cache=False, **FAST)

def test_corrupt_archives(tmp_path):
    (tmp_path/'x.tar.gz').write_bytes(b'this is not a tar file at all' * 10)
    with pytest.raises(UlmfitError, match=r'x.tar.gz could not be read \(\w+'): list(read_texts(tmp_path/'x.tar.gz'))
    (tmp_path/'x.zip').write_bytes(b'PK nope')
    with pytest.raises(UlmfitError, match='x.zip could not be read'): list(read_texts(tmp_path/'x.zip'))
    (tmp_path/'y.txt.gz').write_bytes(b'plain text, not gzip\n')
    with pytest.raises(UlmfitError, match='y.txt.gz could not be read'): list(read_texts(tmp_path/'y.txt.gz'))

def test_latin1_csv_names_line_and_fix(tmp_path, toy_df):
    "Item 12: latin-1 bytes in a CSV read as utf-8: the file, the line and byte, and `encoding=`; with it the file reads"
    df = toy_df.copy(); df.loc[7, 'text'] = 'Un café très crème.'
    f = tmp_path/'reviews.csv'; df.to_csv(f, index=False, encoding='latin-1')
    line = next(i for i, l in enumerate(f.read_bytes().split(b'\n')) if b'caf' in l) + 1
    with pytest.raises(UlmfitError, match=rf"reviews.csv is not valid utf-8: line {line} \(byte \d+\) holds .*Pass the file's encoding as `encoding=`"):
        clas_dls(f, vocab=None, bs=4, **FAST)
    # the vocab is built from the training rows only: a validation column keeps row 7 (the café row) out of a random split
    df['is_valid'] = [i in (0, 1) for i in range(len(df))]; df.to_csv(f, index=False, encoding='latin-1')
    d = clas_dls(f, vocab=None, bs=4, min_freq=1, encoding='latin-1', valid_col='is_valid', **FAST)
    assert 'café' in d.vocab[0]
    with pytest.raises(UlmfitError, match='reviews.csv is not valid utf-8: line'): lm_dls(f, bs=4, **FAST)
    seed = next(s for s in range(100) if 7 not in _random_valid(len(df), 0.1, s))   # a split that trains on row 7
    assert 'café' in lm_dls(f, bs=4, min_freq=1, encoding='latin-1', seed=seed, **FAST).vocab
    with pytest.raises(UlmfitError, match="`encoding`='latin-9000' is not an encoding"): clas_dls(f, vocab=None, encoding='latin-9000')

def test_csv_that_is_a_folder_or_binary(tmp_path):
    (tmp_path/'data.csv').mkdir()
    with pytest.raises(UlmfitError, match='data.csv is a folder, not a CSV file'): clas_dls(tmp_path/'data.csv', vocab=None)
    (tmp_path/'b.csv').write_bytes(b'text,label\n\x00\x01\x02,pos\n')
    with pytest.raises(UlmfitError, match='b.csv looks like a binary file'): clas_dls(tmp_path/'b.csv', vocab=None)
    (tmp_path/'e.csv').write_text('')
    with pytest.raises(UlmfitError, match='e.csv is not a readable CSV file'): clas_dls(tmp_path/'e.csv', vocab=None)

def test_single_class_training_set_refused(toy_df):
    "Item 6: one class in the training rows is refused; a class only in validation too; a class missing from validation warns"
    one = toy_df.assign(label='pos')
    with pytest.raises(UlmfitError, match=r"training rows all have the same class \('pos' in column 'label'\)"): clas_dls(one, vocab=None, bs=4, **FAST)
    v = toy_df.assign(is_valid=[i % 4 == 0 for i in range(60)])
    only_valid = v.assign(label=np.where(v.is_valid, 'neu', v.label))
    with pytest.raises(UlmfitError, match=r"\['neu'\] of column 'label' occur only in the validation rows"):
        clas_dls(only_valid, vocab=None, valid_col='is_valid', bs=4, **FAST)
    lacks = v.assign(label=np.where(v.is_valid, 'pos', v.label))
    with pytest.warns(UserWarning, match=r"no example of class\(es\) \['neg'\]"): clas_dls(lacks, vocab=None, valid_col='is_valid', bs=4, min_freq=1, **FAST)
    multi = toy_df.assign(label='a;a')
    with pytest.raises(UlmfitError, match="same class"): clas_dls(multi, vocab=None, label_delim=';', bs=4, **FAST)

@pytest.mark.parametrize('kw,msg', [(dict(max_vocab=0), r'`max_vocab`=0 is out of range'), (dict(max_vocab=9), r'`max_vocab`=9 is out of range'),
                                     (dict(min_freq=-1), '`min_freq`=-1'), (dict(min_freq=10**6), "only fastai's special tokens"),
                                     (dict(bs=0), '`bs`=0'), (dict(bptt=0), '`bptt`=0'), (dict(bs=2.5), '`bs`=2.5 is not a whole number'),
                                     (dict(seed=-5), '`seed`=-5'), (dict(valid_pct=0), '`valid_pct`=0'), (dict(bs=10**5), 'too few for `bs`=100000')])
def test_lm_dls_bad_numbers(kw, msg):
    "Item 7 and item 9's bs/bptt: refused with the argument's name, not 8 xxfake tokens or a ZeroDivisionError"
    with pytest.raises(UlmfitError, match=msg): lm_dls(toy_texts(40), **{**dict(bs=4, bptt=10, min_freq=1), **kw}, **FAST)

def test_clas_dls_batch_larger_than_training_set(toy_df):
    with pytest.raises(UlmfitError, match='54 training rows, fewer than `bs`=64'): clas_dls(toy_df, vocab=None, min_freq=1, seed=0, **FAST)

def test_long_text_tokenized_like_training():
    "`TokenIds` on a raw string over `max_chars` cuts it as `tokenize_corpus` does: the same ids"
    from ulmfit_ext.tokens import _tok_texts
    from fastai.text.all import TokenizeWithRules
    text = ' '.join(toy_texts(3000, seed=2))   # ~ 150k characters
    st = tokenize_corpus([text], tok=BaseTokenizer(), cache=False, max_chars=20_000, **FAST)
    toks = _tok_texts(TokenizeWithRules(BaseTokenizer()), [text], max_chars=20_000)[0]
    assert toks == st.tokens(0)
