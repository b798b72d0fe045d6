"""Benchmark: `ulmfit serve` under load on 127.0.0.1: concurrent clients for a fixed time (`ulmfit_ext.serve.load_test`),
with a burst of malformed requests mixed in that must all get a 4xx while the valid ones keep succeeding.

    python bench/bench_serve.py                  # 16 clients x 30 s; small fp32 and paper-size int8 classifiers
    python bench/bench_serve.py --quick          # 4 clients x 5 s, small model only

The server is the real command (`python -m ulmfit_ext.cli serve BUNDLE --threads 1`) in its own process; the clients are
threads of this process, each on its own keep-alive connection, sending 8 real IMDb reviews per request. Clients and
server share this machine's 2 cores (and another job used one of them). Weights are random (latency does not depend on
them). The server's peak memory is its VmHWM from /proc. Not a test: nothing is asserted."""
import argparse, json, os, signal, socket, subprocess, sys, tempfile, time, http.client
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import imdb_reviews, header, write_md, save_json, RESULTS

def start(bundle, port, extra):
    p = subprocess.Popen([sys.executable, '-m', 'ulmfit_ext.cli', 'serve', str(bundle), '--port', str(port), '--threads', '1', *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    for _ in range(600):
        if p.poll() is not None: sys.exit(f"the server exited: {p.stderr.read()[-3000:]}")
        try:
            c = http.client.HTTPConnection('127.0.0.1', port, timeout=5); c.request('GET', '/health')
            if c.getresponse().status == 200: return p
        except OSError: time.sleep(0.2)
    p.kill(); sys.exit('the server did not start')

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--clients', type=int, default=16)
    ap.add_argument('--seconds', type=float, default=30)
    ap.add_argument('--batch', type=int, default=8, help='texts per request')
    ap.add_argument('--malformed', type=int, default=100)
    ap.add_argument('--quick', action='store_true')
    a = ap.parse_args(); a.threads = 1
    if a.quick: a.clients, a.seconds, a.malformed = 4, 5, 20
    from bench_profile import make_predictor, CFGS
    from ulmfit_ext.bundle import save_bundle
    from ulmfit_ext.serve import load_test
    texts = imdb_reviews(1000, seed=1).text.tolist()
    configs = [('small 64/128/2', 'fp32', [])] + ([] if a.quick else [('paper 400/1152/3', 'int8', ['--int8'])])
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name, prec, extra in configs:
            p = make_predictor(CFGS[name], texts)
            b = save_bundle(Path(d)/name.split()[0], p.model, p.vocab, 'classifier', tokenizer=p.tokenizer, labels=p.labels)
            with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
            srv = start(b, port, extra)
            try:
                r = load_test(f'http://127.0.0.1:{port}', texts, clients=a.clients, seconds=a.seconds, batch=a.batch, malformed=a.malformed, pid=srv.pid)
                c = http.client.HTTPConnection('127.0.0.1', port, timeout=30); c.request('GET', '/health'); h = json.loads(c.getresponse().read())
            finally:
                srv.send_signal(signal.SIGTERM); srv.communicate(timeout=120)
            rows.append(dict(model=name, precision=prec, **r, served=h['served'], exit_code=srv.returncode)); print(rows[-1], flush=True)
    md = header('`ulmfit serve` under load', a,
                f"- {a.clients} clients × {a.seconds:.0f} s on 127.0.0.1, {a.batch} IMDb test reviews per request (median {int(np.median([len(t.split()) for t in texts]))} words), "
                f"{a.malformed} malformed requests spread over the run; server: `ulmfit serve BUNDLE --threads 1` (bs 64, max-wait 5 ms), random weights\n"
                "- clients and server share the 2 cores; latency is per request, from sending to the whole response\n")
    md += ("| model | precision | requests | errors | requests/s | texts/s | p50 ms | p95 ms | p99 ms | max ms | malformed → 4xx | texts per model batch | server peak RSS MB | exit after SIGTERM |\n"
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    for r in rows:
        md += (f"| {r['model']} | {r['precision']} | {r['requests']:,} | {r['errors']} | {r['requests_per_s']:.1f} | {r['texts_per_s']:.0f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
               f"{r['p99_ms']:.0f} | {r['max_ms']:.0f} | {r['malformed_4xx']}/{r['malformed']} ({', '.join(f'{k}: {v}' for k, v in sorted(r['malformed_statuses'].items()))}) | "
               f"{r['served']['texts']/max(r['served']['batches'], 1):.1f} (largest {r['served']['largest_batch']}) | {r['server_peak_rss_mb']:.0f} | {r['exit_code']} |\n")
    write_md('serve', md); save_json(rows, RESULTS/'serve.json')
    print(md)

if __name__ == '__main__': main()
