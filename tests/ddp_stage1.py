"""A tiny Stage-1 run for tests/test_distributed.py, launched with `python -m torch.distributed.run --nproc_per_node N tests/ddp_stage1.py CORPUS VALID OUT BS REPORT [SLEEP_AT]`:
each rank writes REPORT.rankR.json with its losses, learning rates and time; SLEEP_AT (an epoch) makes rank 0 sleep after that epoch, for the kill test."""
import json, os, sys, time, torch
torch.set_num_threads(1)
from fastai.text.all import BaseTokenizer, Callback
from fastai.distributed import rank_distrib, num_distrib
from ulmfit_ext.pretrain import pretrain_lm

corpus, valid, out, bs, report = sys.argv[1:6]
sleep_at = int(sys.argv[6]) if len(sys.argv) > 6 else None

class Probe(Callback):
    "Record each training batch's loss and the learning rate of every layer group (from `learn.opt.hypers`), and the tokens seen"
    order = 99
    def before_fit(self): self.lrs, self.losses, self.tokens, self.batches = [], [], 0, []
    def after_batch(self):
        if not self.training: return
        self.lrs.append([h['lr'] for h in self.opt.hypers]); self.losses.append(float(self.loss)); self.tokens += self.xb[0].numel()
        if len(self.batches) < 3: self.batches.append(self.xb[0][:, 0].tolist())
    def after_epoch(self):
        if sleep_at is not None and self.epoch == sleep_at and rank_distrib() == 0: time.sleep(600)   # the kill comes here

probe, t0 = Probe(), time.time()
res = pretrain_lm(corpus, out, valid=valid, preset='tiny', n_epoch=3, bs=int(bs), bptt=10, min_freq=1, config=dict(emb_sz=16, n_hid=24, n_layers=2),
                  cbs=[probe], tok=BaseTokenizer(), n_workers=0, progress=False)
Path = type(res.out)
Path(f'{report}.rank{rank_distrib()}.json').write_text(json.dumps(dict(
    rank=rank_distrib(), world=max(num_distrib(), 1), seconds=time.time()-t0, tokens=probe.tokens, losses=probe.losses, lrs=probe.lrs,
    first_inputs=probe.batches, valid_loss=res.metrics['valid_loss'], epochs=res.metrics['epochs'])))
