"""`ulmfit_ext.serve` and `ulmfit serve`: the endpoints, the limits and their error codes, micro-batching, overload, graceful
shutdown, and (slow) a bounded load test on 127.0.0.1 with malformed requests mixed in."""
import http.client, json, os, signal, socket, subprocess, sys, threading, time
from pathlib import Path
from urllib.parse import urlsplit
import numpy as np, pytest, torch
pytest.importorskip('fastapi'); pytest.importorskip('uvicorn')
from fastai.text.all import BaseTokenizer
from ulmfit_ext.core import UlmfitError
from ulmfit_ext.data import lm_dls, clas_dls
from ulmfit_ext.learner import clas_learner
from ulmfit_ext.test_utils import toy_df, tiny_cfg
from ulmfit_ext.bundle import save_classifier_bundle
from ulmfit_ext.inference import as_predictor, predict_probs
from ulmfit_ext.pair import BiClassifier, backward_dls
from ulmfit_ext.serve import (ServeLimits, RequestError, parse_request, MicroBatcher, create_app, background_server, load_test,
                              _bad_requests)

DKW = dict(tok=BaseTokenizer(), n_workers=0, progress=False, cache=False, seed=0)
WORDS = 'good bad film the plot awful great is'.split()

@pytest.fixture(scope='module')
def bundles(tmp_path_factory):
    "A tiny classifier bundle and a forward+backward ensemble folder (untrained: only the order of outputs matters)"
    d, df = tmp_path_factory.mktemp('serve'), toy_df(100)
    dls_lm = lm_dls(df, bs=8, bptt=10, **DKW)
    _, dls_b = backward_dls(dls_lm, df, df, clas_kwargs=dict(valid_col='is_valid'), bs=8, bptt=10, **DKW)
    dls_f = clas_dls(df, vocab=dls_lm.vocab, valid_col='is_valid', bs=8, bptt=10, **DKW)
    torch.manual_seed(0)
    f, b = clas_learner(dls_f, config=tiny_cfg, bptt=10), clas_learner(dls_b, config=tiny_cfg, bptt=10)
    save_classifier_bundle(f, d/'clas')
    BiClassifier(f, b).save(d/'ens')
    return d

def _texts(n, seed=0, lo=1, hi=60):
    rng = np.random.default_rng(seed)
    return [' '.join(rng.choice(WORDS, size=int(k))) for k in rng.integers(lo, hi, n)]

def _call(url, method='GET', body=None, headers=None):
    "(status, parsed JSON body, headers) of one request"
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request(method, u.path, body=body, headers=headers or {})
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, (json.loads(data) if data else None), dict(r.getheaders())

def _probs(res):
    return np.array([[p['probs'][c] for c in res['classes']] for p in res['predictions']])

# ---------------------------------------------------------------- endpoints

def test_predict_in_order_and_health(bundles):
    texts = _texts(30)
    with background_server(create_app(bundles/'clas')) as srv:
        code, res, _ = _call(srv.url + '/predict', 'POST', json.dumps({'texts': texts}))
        code_h, h, _ = _call(srv.url + '/health')
    want = predict_probs(bundles/'clas', texts, progress=False)
    assert code == 200 and res['classes'] == ['neg', 'pos'] and len(res['predictions']) == 30
    np.testing.assert_allclose(_probs(res), want, atol=1e-6)
    assert [p['label'] for p in res['predictions']] == [['neg', 'pos'][i] for i in want.argmax(1)]
    assert want.std(0).max() > 1e-4   # the rows differ, so a wrong order would show
    assert code_h == 200 and h['status'] == 'ok' and h['kind'] == 'classifier' and h['int8'] is False
    assert h['limits'] == dict(max_texts=256, max_chars=50000, max_body_mb=8.0, max_queue=4096) and h['served']['texts'] == 30

def test_ensemble_and_int8(bundles):
    texts = _texts(20, seed=1)
    with background_server(create_app(bundles/'ens', int8=True)) as srv:
        code, res, _ = _call(srv.url + '/predict', 'POST', json.dumps({'texts': texts}))
        h = _call(srv.url + '/health')[1]
    assert code == 200 and h['kind'] == 'ensemble' and h['int8'] is True
    np.testing.assert_allclose(_probs(res), predict_probs(bundles/'ens', texts, progress=False), atol=0.05)   # int8 vs fp32

BAD = [  # (body, status, words in the message)
    (b'{"texts": ["a", ', 400, 'not valid JSON'), (b'\xff\xfe', 400, 'not valid JSON'), (b'', 400, 'not valid JSON'),
    (b'["a film"]', 422, 'no "texts" field'), (b'{"text": ["a"]}', 422, 'no "texts" field'), (b'{"texts": "a film"}', 422, 'not a list'),
    (b'{"texts": []}', 422, 'is empty'), (b'{"texts": ["ok", 3]}', 422, 'texts[1] is a int'), (b'{"texts": [null]}', 422, 'texts[0] is null'),
    (b'{"texts": [""]}', 422, 'texts[0] is empty'), (b'{"texts": [" \\n "]}', 422, 'only whitespace'),
    (json.dumps({'texts': ['a'] * 5}).encode(), 422, 'holds 5 texts; at most 4'), (json.dumps({'texts': ['x' * 101]}).encode(), 422, 'has 101 characters'),
    (b'{"texts": ["a"], "bs": 3}', 422, 'Unknown field'), (json.dumps({'texts': ['y' * 100] * 4}).encode() + b' ' * 11000, 413, 'at most 10,485'),
]

@pytest.mark.parametrize('body,status,words', BAD, ids=[f'{s}-{w[:18]}' for _, s, w in BAD])
def test_refusals_name_the_problem(bundles, body, status, words):
    "Every bad request gets its 4xx with a JSON error naming the problem, and parse_request agrees with the server"
    lim = ServeLimits(max_texts=4, max_chars=100, max_body_mb=0.01)
    with pytest.raises(RequestError) as e: parse_request(body, lim)
    assert e.value.status == status and words in e.value.message, e.value.message
    with background_server(create_app(bundles/'clas', limits=lim)) as srv:
        code, res, _ = _call(srv.url + '/predict', 'POST', body, {'Content-Type': 'application/json'})
        ok = _call(srv.url + '/predict', 'POST', b'{"texts": ["still works"]}')[0]
    assert code == status and res == {'error': e.value.message, 'status': status} and ok == 200

def test_body_limit_by_content_length_and_stream(bundles):
    "A declared Content-Length over the limit is refused before the body is read; so is a chunked body that grows past it"
    with background_server(create_app(bundles/'clas', limits=ServeLimits(max_body_mb=0.001))) as srv:
        u = urlsplit(srv.url)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        c.putrequest('POST', '/predict'); c.putheader('Content-Length', str(10**9)); c.endheaders()
        r = c.getresponse(); assert r.status == 413 and 'at most 1,048' in json.loads(r.read())['error']; c.close()
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        c.request('POST', '/predict', body=iter([b'{"texts": ["' + b'z' * 800, b'z' * 800 + b'"]}']), encode_chunked=True)
        r = c.getresponse(); assert r.status == 413; r.read(); c.close()
        assert _call(srv.url + '/predict')[0] == 405 and _call(srv.url + '/missing')[0] == 404

def test_limits_checked():
    with pytest.raises(UlmfitError, match='`max_chars`=0'): ServeLimits(max_chars=0)
    with pytest.raises(UlmfitError, match='`max_body_mb`=0'): ServeLimits(max_body_mb=0)
    with pytest.raises(UlmfitError, match='at least `max_texts`'): ServeLimits(max_texts=100, max_queue=10)
    with pytest.raises(UlmfitError, match='There is no bundle folder at /nonexistent'): create_app('/nonexistent/folder')

def test_bad_requests_cover_every_refusal():
    "`load_test`'s malformed set, built from /health's limits, is refused (4xx) by `parse_request` one by one"
    lim = ServeLimits(max_texts=3, max_chars=50, max_body_mb=0.002)
    for body in _bad_requests(dict(max_texts=3, max_chars=50, max_body_mb=0.002)):
        with pytest.raises(RequestError) as e: parse_request(body, lim)
        assert 400 <= e.value.status < 500

# ---------------------------------------------------------------- micro-batching, overload, shutdown

def test_concurrent_requests_share_batches(bundles):
    model = as_predictor(bundles/'clas')
    reqs = [_texts(int(n), seed=i) for i, n in enumerate(np.random.default_rng(0).integers(1, 6, 16))]
    mb = MicroBatcher(model, bs=32, max_wait=0.05)
    futs, gate = [None] * len(reqs), threading.Barrier(len(reqs))
    def go(i): gate.wait(); futs[i] = mb.submit(reqs[i])
    ts = [threading.Thread(target=go, args=(i,)) for i in range(len(reqs))]
    for t in ts: t.start()
    for t in ts: t.join()
    for r, f in zip(reqs, futs): np.testing.assert_allclose(f.result(30), predict_probs(model, r, progress=False), atol=1e-6)
    mb.close()
    assert mb.stats['requests'] == 16 and mb.stats['batches'] < 16 and mb.stats['texts'] == sum(map(len, reqs))

def test_full_queue_is_503_then_recovers(bundles):
    "While the model is busy, texts beyond max_queue are refused with 503 and Retry-After; queued ones are still answered"
    mb = MicroBatcher(as_predictor(bundles/'clas'), bs=4, max_wait=0, max_queue=5)
    go, orig = threading.Event(), mb._answer
    mb._answer = lambda jobs: (go.wait(30), orig(jobs))
    a = mb.submit(['a good film', 'bad'])
    time.sleep(0.2)                       # the thread has taken `a` and waits
    b = mb.submit(['x', 'y', 'z'])        # 5 waiting: the most
    with pytest.raises(RequestError) as e: mb.submit(['one more'])
    assert e.value.status == 503 and e.value.headers == {'Retry-After': '1'} and 'busy' in e.value.message
    go.set()
    assert a.result(30).shape == (2, 2) and b.result(30).shape == (3, 2)
    mb.submit(['fine again']).result(30)
    mb.close()
    assert mb.waiting == 0

def test_close_answers_queued_requests(bundles):
    mb = MicroBatcher(as_predictor(bundles/'clas'), bs=2, max_wait=0)
    futs = [mb.submit(_texts(3, seed=i)) for i in range(10)]
    mb.close()
    assert all(f.done() and f.result().shape == (3, 2) for f in futs)
    with pytest.raises(RequestError, match='shutting down'): mb.submit(['late'])

def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _start_cli(folder, port, *args):
    "`ulmfit serve` in a subprocess (python -m ulmfit_ext.cli, this interpreter), waiting until /health answers"
    env = dict(os.environ, OMP_NUM_THREADS='1')
    p = subprocess.Popen([sys.executable, '-m', 'ulmfit_ext.cli', 'serve', str(folder), '--port', str(port), '--threads', '1', *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if p.poll() is not None: raise AssertionError(f'ulmfit serve exited {p.returncode}: {p.stderr.read()[-3000:]}')
        try:
            if _call(f'http://127.0.0.1:{port}/health')[0] == 200: return p
        except OSError: time.sleep(0.2)
    p.kill(); raise AssertionError('ulmfit serve did not start')

def test_cli_serve_and_graceful_sigterm(bundles):
    "SIGTERM while requests are in flight: they all complete with 200, then the process exits 0"
    port = _free_port()
    p = _start_cli(bundles/'clas', port, '--max-wait-ms', '50')
    url, results = f'http://127.0.0.1:{port}', []
    def client(i): results.append(_call(url + '/predict', 'POST', json.dumps({'texts': _texts(40, seed=i, hi=200)}))[0])
    ts = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in ts: t.start()
    time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    for t in ts: t.join(60)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err[-2000:]
    assert 'serving' in out and 'POST /predict' in out and 'stopped serving' in out
    assert results == [200] * 6, results

# ---------------------------------------------------------------- slow: the load test

@pytest.mark.slow
def test_load_8_clients_10_seconds(bundles):
    "8 clients x 10 s of valid requests on 127.0.0.1 with 40 malformed ones mixed in: no error, every malformed one a 4xx"
    port = _free_port()
    p = _start_cli(bundles/'ens', port)
    try:
        r = load_test(f'http://127.0.0.1:{port}', _texts(200, seed=3, hi=120), clients=8, seconds=10, batch=8, malformed=40, pid=p.pid)
        h = _call(f'http://127.0.0.1:{port}/health')[1]
    finally:
        p.send_signal(signal.SIGTERM); p.communicate(timeout=60)
    print(json.dumps(r, indent=1))
    assert r['errors'] == 0 and r['ok'] > 50, r
    assert r['malformed_4xx'] == r['malformed'] == 40, r['malformed_statuses']
    assert r['p99_ms'] < 10_000 and r['server_peak_rss_mb'] > 50
    assert h['served']['requests'] >= r['ok'] and h['served']['batches'] < h['served']['requests']   # requests shared batches
    assert p.returncode == 0
