"""A small numpy-free "training" job: what a python3 training script does to
the kernel (imports, threads, a multiprocessing pool, files, random, time),
without any third-party package. Prints TRAIN-OK and the final loss.

Usage: python3 train.py [OUT_DIR]"""
import hashlib
import json
import math
import multiprocessing as mp
import os
import random
import sys
import tempfile
import threading
import time


def make_data(n, seed):
    rng = random.Random(seed)
    xs = [rng.uniform(-1, 1) for _ in range(n)]
    return [(x, 3.0 * x + 0.5 + rng.gauss(0, 0.05)) for x in xs]


def grad(args):
    w, b, chunk = args
    gw = gb = 0.0
    for x, y in chunk:
        e = w * x + b - y
        gw += 2 * e * x
        gb += 2 * e
    return gw, gb, len(chunk)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()
    data = make_data(4000, int.from_bytes(os.urandom(2), "little"))
    chunks = [data[i::4] for i in range(4)]
    w = b = 0.0
    # A background thread, as data loaders do.
    ticks = []
    stop = threading.Event()
    t = threading.Thread(target=lambda: [ticks.append(time.monotonic()) or stop.wait(0.01) for _ in iter(stop.is_set, True)])
    t.start()
    ctx = mp.get_context("fork")
    # close + join, not the context manager's terminate(): workers then end
    # on their own instead of racing a kill(), so every run makes the same
    # syscalls (the learn-mode test depends on that).
    pool = ctx.Pool(2)
    try:
        for _ in range(30):
            parts = pool.map(grad, [(w, b, c) for c in chunks])
            n = sum(p[2] for p in parts)
            w -= 0.3 * sum(p[0] for p in parts) / n
            b -= 0.3 * sum(p[1] for p in parts) / n
    finally:
        pool.close()
        pool.join()
    stop.set()
    t.join()
    loss = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
    with tempfile.NamedTemporaryFile("w", dir=out, delete=False, suffix=".json") as f:
        json.dump({"w": w, "b": b, "loss": loss}, f)
        name = f.name
    with open(name, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    os.unlink(name)
    assert math.isfinite(loss) and loss < 0.01, loss
    print("TRAIN-OK loss=%.5f w=%.3f b=%.3f sha=%s" % (loss, w, b, digest[:12]))


if __name__ == "__main__":
    main()
