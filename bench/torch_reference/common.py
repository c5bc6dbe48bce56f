"""What the PyTorch twins share: the timing loop, the report of a bench,
the KL term of Conditioning Augmentation and the fixture comparison."""

import argparse
import json
import sys
import time

import torch


def timed(f, n, warm=1):
    """Median and minimum ms of `n` calls of `f` after `warm` untimed ones
    (the first of them under PyTorch's FlopCounterMode: GFLOP of matrix
    products and convolutions, as t2i bench counts them)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        f()
    for _ in range(warm - 1):
        f()
    v = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        v.append((time.perf_counter() - t) * 1e3)
    v.sort()
    return {"median_ms": v[len(v) // 2], "min_ms": v[0], "repeats": n,
            "gflop": counter.get_total_flops() / 1e9}


def report(model, batch, step, gen, repeats, warm):
    """Times a training iteration and generation at batch 1, 16 and 32
    (`gen(k)` returns the call that draws k images), prints and returns the
    JSON line compare.sh reads."""
    out = {"model": model, "engine": f"pytorch {torch.__version__}", "batch_size": batch,
           "threads": torch.get_num_threads(), "train_step": timed(step, repeats, warm),
           "generate_batch1": timed(gen(1), repeats * 3, warm),
           "generate_batch16": timed(gen(16), repeats, warm),
           "generate_batch32": timed(gen(32), repeats, warm)}
    print(json.dumps(out))
    return out


def kl_loss(mu, logvar):
    """KL(N(mu, sigma^2) || N(0, 1)), averaged as the official `KL_loss`."""
    return -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


def cli(doc, check, bench, check_args, bench_args, check_help):
    """The twins' command line: `check` (exit 1 when the fixture is not
    reproduced) and `bench` (prints the JSON line compare.sh reads). Each
    `*_args` is a list of (flag, argparse keywords); `check` and `bench`
    take the parsed values as keywords (flags with - turned into _)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, helptext, args in [("check", check_help, check_args),
                                 ("bench", "time a training iteration and generation",
                                  bench_args + [("--repeats", dict(type=int, default=3)),
                                                ("--threads", dict(type=int, default=2))])]:
        p = sub.add_parser(name, help=helptext)
        for flag, kw in args:
            p.add_argument(flag, **kw)
    a = vars(ap.parse_args())
    cmd = a.pop("cmd")
    if cmd == "check":
        sys.exit(0 if check(**a) else 1)
    bench(**a)
