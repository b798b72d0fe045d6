"""Tests of `ulmfit_ext.corpus`: Gutenberg header/licence stripping, Brown tags, paragraph splitting, deduplication,
the hash split, the manifest, the licence filter and atomic output, on small synthetic inputs; the real shared corpus (slow)."""
import json, tarfile, time, zipfile
from pathlib import Path
import pandas as pd, pytest
from ulmfit_ext.core import UlmfitError, sha256_file
from ulmfit_ext import corpus as uc
from ulmfit_ext.corpus import (paragraphs, split_paragraph, strip_gutenberg, brown_text, build_corpus, BuiltCorpus, corpus_sources)

HEADER = ("\ufeffThe Project Gutenberg EBook of A Test, by Nobody\r\n\r\nThis eBook is for the use of anyone anywhere at no cost and with\r\n"
          "almost no restrictions whatsoever. You may copy it under the terms of the Project Gutenberg License.\r\n\r\n"
          "*** START OF THIS PROJECT GUTENBERG EBOOK A TEST ***\r\n\r\n\r\n\r\nProduced by Somebody Kind and the Online Distributed\r\n"
          "Proofreading Team at http://www.pgdp.net\r\n\r\n")
BODY = ("A TEST\r\n\r\nby Nobody\r\n\r\nCHAPTER I\r\n\r\nIt is a truth universally\r\nacknowledged, that a _single_ man in possession\r\n"
        "of a good fortune, must be in want of a wife.\r\n\r\n[Illustration: a wife]\r\n\r\n* * * * *\r\n\r\nThe end of the book.\r\n")
FOOTER = ("\r\n\r\nEnd of the Project Gutenberg EBook of A Test, by Nobody\r\n\r\n*** END OF THIS PROJECT GUTENBERG EBOOK A TEST ***\r\n\r\n"
          "***** This file should be named 1-0.txt or 1-0.zip *****\r\n\r\nUpdated editions will replace the previous one.\r\n\r\n"
          "*** START: FULL LICENSE ***\r\n\r\nTHE FULL PROJECT GUTENBERG LICENSE\r\nPLEASE READ THIS BEFORE YOU DISTRIBUTE OR USE THIS WORK\r\n\r\n"
          "Section 1. General Terms of Use and Redistributing Project Gutenberg-tm electronic works\r\n")
BOOK_PARAS = ['A TEST', 'by Nobody', 'CHAPTER I',
              'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.', 'The end of the book.']
BROWN = ("\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at investigation/nn of/in Atlanta's/np$ "
         "recent/jj primary/nn election/nn produced/vbd ``/`` no/at evidence/nn ''/'' that/cs any/dti irregularities/nns took/vbd place/nn ./.\n"
         "The/at jury/nn agreed/vbd (/( mostly/rb )/) ;/. ;/.\nit/pps ended/vbd ./.\n\n\n\tAnother/dt paragraph/nn ,/, with/in 50%/cd !/.\n")
LONG = ' '.join(f'This is sentence number {i} of a very long paragraph.' for i in range(300))

# ---------------------------------------------------------------- paragraphs

def test_paragraphs_crlf_blank_lines_and_wrapping():
    text = "First paragraph, wrapped\r\nover two lines.\r\n\r\n\r\n  Second one.  \r\n \r\nThird\rone.\n"
    assert paragraphs(text) == ['First paragraph, wrapped over two lines.', 'Second one.', 'Third one.']
    speech = "Mr. Speaker:\n" + "\n".join(f"Paragraph {i} of an address written one paragraph a line, " + "with no blank lines between them. "*3 for i in range(4))
    assert len(paragraphs(speech)) == 5 and paragraphs(speech)[0] == 'Mr. Speaker:'

def test_long_paragraphs_cut_at_sentence_ends():
    ps = paragraphs(LONG, max_chars=2000)
    assert len(ps) > 5 and all(len(p) <= 2000 for p in ps) and all(p.endswith('paragraph.') for p in ps)
    assert ' '.join(ps) == LONG
    assert all(len(p) <= 1000 for p in split_paragraph('word ' * 1000 + 'x' * 3000, 1000))   # no sentence end, a word longer than the limit
    assert split_paragraph('Short.', 10) == ['Short.']

# ---------------------------------------------------------------- cleaning

def test_strip_gutenberg_header_and_licence():
    body, found = strip_gutenberg(HEADER + BODY + FOOTER)
    assert found == dict(start=True, end=True)
    assert 'universally' in body and 'LICENSE' not in body and 'restrictions' not in body and 'End of the Project' not in body
    for start, end in [("***START OF THE PROJECT GUTENBERG EBOOK X***", "***END OF THE PROJECT GUTENBERG EBOOK X***"),
                       ("*** START OF THE PROJECT GUTENBERG ETEXT OF X ***", "*** END OF THE PROJECT GUTENBERG ETEXT OF X ***"),
                       ("*** start of this project gutenberg ebook x ***", "End of Project Gutenberg's X, by Y")]:
        assert strip_gutenberg(f"header\n{start}\nthe book\n{end}\nlicence")[0].strip() == 'the book', start
    old = "Title\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n" + "the book\n"*20 + "The Project Gutenberg Etext of X\nsmall print"
    assert strip_gutenberg(old) == ("\n" + "the book\n"*20, dict(start=True, end=True))
    assert strip_gutenberg("just a text") == ("just a text", dict(start=False, end=False))

def test_gutenberg_paragraphs_drop_boilerplate():
    drop, notes = uc.Counter(), {}
    assert uc._gutenberg_paras(HEADER + BODY + FOOTER, 5000, drop, notes, 'x') == BOOK_PARAS[:-1] + ['* * * * *', BOOK_PARAS[-1]]   # `* * *` goes later, as no text
    assert drop == {'boilerplate': 2} and notes == {}   # the producers' credit and the illustration mark

def test_brown_text():
    t = brown_text(BROWN)
    assert t.split('\n\n') == ["The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced \"no evidence\" "
                               "that any irregularities took place. The jury agreed (mostly);; it ended.", "Another paragraph, with 50%!"]
    assert '/' not in t

# ---------------------------------------------------------------- building

@pytest.fixture
def inputs(tmp_path):
    "One input of each kind: a Gutenberg book in a tar.xz, Brown files in a zip, a CRLF text with duplicates and a long paragraph, a CSV"
    d = tmp_path/'in'; d.mkdir()
    (tmp_path/'book.txt').write_bytes((HEADER + BODY + FOOTER).encode('utf-8'))
    with tarfile.open(d/'books.tar.xz', 'w:xz') as tf: tf.add(tmp_path/'book.txt', arcname='books/pg1.txt')
    with zipfile.ZipFile(d/'brown.zip', 'w') as zf:
        zf.writestr('brown/ca01', BROWN); zf.writestr('brown/cb02', BROWN.replace('Fulton', 'Dekalb')); zf.writestr('brown/README', 'About the corpus.')
    dup = "This paragraph is in the file twice, word for word.\r\n\r\n"
    (d/'notes.txt').write_bytes((dup + "Something else entirely here.\r\n\r\n" + dup.upper().lower().replace('this', 'THIS') + LONG + "\r\n").encode('utf-8'))
    pd.DataFrame({'text': ['A short review of a film.', None, '   ', 'Another review of another film, a longer one.']}).to_csv(d/'reviews.csv', index=False)
    return d

def _paras(c):
    return [p for f in (c.train, c.valid) for p in f.read_text(encoding='utf-8').split('\n\n') if p]

def test_build_corpus_synthetic(inputs, tmp_path):
    srcs = [dict(path=inputs/'books.tar.xz', kind='gutenberg', name='books', licence='public domain', shippable=True),
            dict(path=inputs/'brown.zip', kind='brown'), inputs/'notes.txt', inputs/'reviews.csv']
    c = build_corpus(tmp_path/'out', srcs, valid_pct=0.25, max_chars=1500, progress=False)
    m = c.manifest
    assert sorted(p.name for p in c.path.iterdir()) == ['manifest.json', 'train.txt', 'valid.txt']
    assert [s['name'] for s in m['sources']] == ['books', 'brown.zip', 'notes.txt', 'reviews.csv']
    assert [s['documents'] for s in m['sources']] == [1, 2, 1, 2]                                     # README skipped; blank CSV rows skipped
    assert [s['shippable'] for s in m['sources']] == [True, False, False, False] and m['shippable'] is False
    assert m['sources'][0]['licence'] == 'public domain' and 'unknown' in m['sources'][2]['licence']
    assert m['sources'][0]['inputs'] == {'books.tar.xz': sha256_file(inputs/'books.tar.xz')}
    assert m['sources'][0]['dropped'] == {'boilerplate': 2, 'no_text': 1}                             # credit, illustration; `* * *`
    assert m['sources'][2]['dropped'] == {'duplicates': 1}                                          # the same after normalising case
    paras = _paras(c)
    assert set(BOOK_PARAS) <= set(paras) and "Another paragraph, with 50%!" in paras
    assert not any(w in p for p in paras for w in ('Gutenberg', 'LICENSE', '/at', '\r', '_single_'))
    assert max(map(len, paras)) <= 1500
    # counts in the manifest are those of the files
    for s in ('train', 'valid'):
        ps = [p for p in getattr(c, s).read_text(encoding='utf-8').split('\n\n') if p]
        assert m['splits'][s] == dict(paragraphs=len(ps), words=sum(len(p.split()) for p in ps), chars=sum(map(len, ps)))
        assert m['files'][f'{s}.txt']['sha256'] == sha256_file(getattr(c, s))
        assert m['splits'][s]['words'] == sum(e[s]['words'] for e in m['sources'])
    assert 0 < m['splits']['valid']['paragraphs'] < m['splits']['train']['paragraphs']
    assert 'wikitext2' in m['left_out'] and "split='para'" in m['layout']
    assert repr(c).startswith('BuiltCorpus(') and c.words('valid') == m['splits']['valid']['words']

def test_split_is_deterministic_by_paragraph(inputs, tmp_path):
    "The same paragraph always lands in the same file, whatever else is in the corpus"
    a = build_corpus(tmp_path/'a', [inputs/'notes.txt'], valid_pct=0.3, max_chars=1500, progress=False)
    b = build_corpus(tmp_path/'b', [inputs/'reviews.csv', inputs/'notes.txt'], valid_pct=0.3, max_chars=1500, progress=False)
    va, vb = (set(p for p in c.valid.read_text().split('\n\n') if p) for c in (a, b))
    assert va and va <= vb
    assert (tmp_path/'a'/'train.txt').read_bytes() == build_corpus(tmp_path/'a2', [inputs/'notes.txt'], valid_pct=0.3, max_chars=1500, progress=False).train.read_bytes()

def test_read_as_documents_by_pretraining(inputs, tmp_path):
    "Both layouts give one document per paragraph"
    from ulmfit_ext.readers import read_texts
    c = build_corpus(tmp_path/'c', [inputs/'notes.txt', inputs/'reviews.csv'], valid_pct=0.1, progress=False)
    para = [d.strip() for d in read_texts(c.train, split='para')]
    assert para == list(read_texts(c.train, split='line')) and len(para) == c.manifest['splits']['train']['paragraphs']

@pytest.fixture
def fake_shared(tmp_path, monkeypatch):
    "A ../shared/datasets stand-in with tiny files under the real names, found through ULMFIT_DATA"
    root = tmp_path/'datasets'
    for name, s in corpus_sources.items(): (root/s['dataset']).mkdir(parents=True)
    (tmp_path/'pg1.txt').write_text(HEADER + BODY + FOOTER, encoding='utf-8')
    with tarfile.open(root/'gutenberg_books'/'gutenberg_ece451.tar.xz', 'w:xz') as tf: tf.add(tmp_path/'pg1.txt', arcname='gutenberg_ece451/books/pg1.txt')
    for ds, f, text in (('state_union', 'state_union.zip', 'A long line of a State of the Union address. '*5), ('inaugural', 'inaugural.zip', 'Fellow citizens, we meet today.')):
        with zipfile.ZipFile(root/ds/f, 'w') as zf: zf.writestr(f'{ds}/1999-Someone.txt', text); zf.writestr(f'{ds}/README', 'readme')
    with zipfile.ZipFile(root/'brown_corpus'/'brown.zip', 'w') as zf: zf.writestr('brown/ca01', BROWN)
    (root/'wikitext2').mkdir(); (root/'wikitext2'/'valid.txt').write_text(' = Title = \n text <unk> \n')
    monkeypatch.setenv('ULMFIT_DATA', str(root))
    return root

def test_shared_sources_and_licence_filter(fake_shared, tmp_path):
    c = build_corpus(tmp_path/'all', progress=False)
    assert [s['name'] for s in c.manifest['sources']] == ['gutenberg', 'state_union', 'inaugural', 'brown']
    assert c.manifest['sources'][1]['kind'] == 'text' and c.manifest['sources'][3]['licence'].startswith('May be used for non-commercial')
    s = build_corpus(tmp_path/'ship', shippable=True, progress=False)
    assert [e['name'] for e in s.manifest['sources']] == ['gutenberg', 'state_union', 'inaugural'] and s.manifest['shippable'] is True
    assert 'brown' in s.manifest['left_out'] and 'Fulton' not in s.train.read_text() + s.valid.read_text()
    with pytest.raises(UlmfitError, match="'brown' is not"): build_corpus(tmp_path/'x', ['gutenberg', 'brown'], shippable=True, progress=False)
    with pytest.raises(UlmfitError, match='kept for measuring perplexity'): build_corpus(tmp_path/'x', ['wikitext2'], progress=False)
    with pytest.raises(UlmfitError, match='is WikiText-2'): build_corpus(tmp_path/'x', [fake_shared/'wikitext2'/'valid.txt'], progress=False)
    mine = tmp_path/'mine.txt'; mine.write_text('My own public-domain text, released by me.')
    with pytest.raises(UlmfitError, match='declare it'): build_corpus(tmp_path/'x', ['gutenberg', mine], shippable=True, progress=False)
    ok = build_corpus(tmp_path/'x', ['gutenberg', dict(path=mine, licence='CC0', shippable=True)], shippable=True, progress=False)
    assert ok.manifest['sources'][1]['licence'] == 'CC0'

def test_missing_shared_data(tmp_path, monkeypatch):
    monkeypatch.setenv('ULMFIT_DATA', str(tmp_path/'nothing'))
    with pytest.raises(UlmfitError, match='None of the shared data sets'): build_corpus(tmp_path/'x', progress=False)
    with pytest.raises(UlmfitError, match="'gutenberg_books' .* is not on this machine"): build_corpus(tmp_path/'x', ['gutenberg'], progress=False)

def test_refusals_and_atomic_output(inputs, tmp_path, monkeypatch):
    out = tmp_path/'out'
    build_corpus(out, [inputs/'notes.txt'], progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(UlmfitError, match='overwrite=True'): build_corpus(out, [inputs/'reviews.csv'], progress=False)
    with pytest.raises(UlmfitError, match='not a corpus folder'): build_corpus(inputs, [inputs/'notes.txt'], overwrite=True, progress=False)
    with pytest.raises(UlmfitError, match='neither a shared source'): build_corpus(tmp_path/'y', [tmp_path/'missing.txt'], progress=False)
    with pytest.raises(UlmfitError, match='valid_pct'): build_corpus(tmp_path/'y', [inputs/'notes.txt'], valid_pct=1, progress=False)
    with pytest.raises(UlmfitError, match="`kind`='pdf'"): build_corpus(tmp_path/'y', [dict(path=inputs/'notes.txt', kind='pdf')], progress=False)
    def crash(*a, **k): raise RuntimeError('disk full')
    monkeypatch.setattr(uc, '_write_manifest', crash)
    with pytest.raises(RuntimeError, match='disk full'): build_corpus(out, [inputs/'reviews.csv'], overwrite=True, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before            # the old corpus is intact
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]        # and no temporary folder is left
    monkeypatch.undo()
    c = build_corpus(out, [inputs/'reviews.csv'], overwrite=True, progress=False)
    assert [s['name'] for s in c.manifest['sources']] == ['reviews.csv']
    with pytest.raises(UlmfitError, match='not a corpus folder'): BuiltCorpus(inputs)

# ---------------------------------------------------------------- the real shared corpus

@pytest.mark.slow
def test_real_shippable_corpus(shared_dataset, tmp_path):
    "The shippable corpus from ../shared: plausible sizes per source, no Project Gutenberg boilerplate, no Brown, a ~2% held-out split"
    for name in ('gutenberg_books', 'state_union', 'inaugural'): shared_dataset(name)
    t0 = time.time()
    c = build_corpus(tmp_path/'shared', shippable=True, progress=False)
    secs = time.time() - t0
    m = c.manifest
    words = {s['name']: s['train']['words'] + s['valid']['words'] for s in m['sources']}
    print(f"built in {secs:.0f} s: {words}")
    assert set(words) == {'gutenberg', 'state_union', 'inaugural'} and m['shippable'] is True
    assert 11_000_000 < words['gutenberg'] < 12_800_000          # 12.76M whitespace words with the headers and licences
    assert 320_000 < words['state_union'] < 352_000 and 125_000 < words['inaugural'] < 139_000
    assert m['sources'][0]['documents'] == 113 and m['sources'][1]['documents'] == 65 and m['sources'][2]['documents'] == 59
    assert 0.015 < m['splits']['valid']['words'] / (m['splits']['train']['words'] + m['splits']['valid']['words']) < 0.025
    text = c.train.read_text(encoding='utf-8') + c.valid.read_text(encoding='utf-8')
    for boiler in ('Project Gutenberg', 'PROJECT GUTENBERG', 'gutenberg.org', 'START OF THIS', 'FULL LICENSE', 'Literary Archive Foundation'):
        assert boiler not in text, boiler
    assert max(len(p) for p in text.split('\n\n')) <= 5000 and '\r' not in text
    assert secs < 600
