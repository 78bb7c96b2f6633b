#!/usr/bin/env python3
"""A small, real training job (standard library only): logistic regression by
gradient descent on a CSV dataset. Reads every *.csv under $AIDP_DATA_DIR (the
sandbox's read-only /data) or the sample next to this file, writes the model
and metrics to $AIDP_OUT_DIR (/out), and proves a few sandbox facts on the way."""
import csv, glob, json, math, os, random, socket

data_dir = os.environ.get("AIDP_DATA_DIR", "/data")
out_dir = os.environ.get("AIDP_OUT_DIR", "/out")
files = sorted(glob.glob(os.path.join(data_dir, "**", "*.csv"), recursive=True))
if not files:
    files = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample.csv")]

rows = []
for f in files:
    with open(f, newline="") as fh:
        for r in csv.DictReader(fh):
            rows.append(([float(r["x1"]), float(r["x2"])], int(r["label"])))
print(f"train.py: {len(rows)} rows from {', '.join(files)}")

random.seed(0)
random.shuffle(rows)
split = int(len(rows) * 0.8)
train, test = rows[:split], rows[split:]
w, b, lr = [0.0, 0.0], 0.0, 0.1

def predict(x):
    z = w[0] * x[0] + w[1] * x[1] + b
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

for epoch in range(200):
    gw, gb = [0.0, 0.0], 0.0
    for x, y in train:
        e = predict(x) - y
        gw[0] += e * x[0]; gw[1] += e * x[1]; gb += e
    n = len(train)
    w[0] -= lr * gw[0] / n; w[1] -= lr * gw[1] / n; b -= lr * gb / n

acc = sum((predict(x) >= 0.5) == bool(y) for x, y in test) / max(1, len(test))
print(f"train.py: test accuracy {acc:.3f}")

# The sandbox at work: loopback only (or no sockets at all: strict-cpu-train's
# seccomp allowlist refuses them), the dataset read-only.
try:
    ifaces = [name for _, name in socket.if_nameindex()]
except PermissionError:
    ifaces = "none (sockets refused by the profile)"
data_ro = not os.access(data_dir, os.W_OK)
print(f"train.py: network interfaces: {ifaces}; {data_dir} read-only: {data_ro}; uid {os.getuid()}")

os.makedirs(out_dir, exist_ok=True)
with open(os.path.join(out_dir, "model.json"), "w") as fh:
    json.dump({"weights": w, "bias": b, "test_accuracy": acc, "rows": len(rows)}, fh, indent=2)
print(f"train.py: model written to {out_dir}/model.json")
