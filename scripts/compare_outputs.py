"""Compares two output roots of scripts/compare_outputs.sh, file by file, bit for bit.

  python3 scripts/compare_outputs.py <root A> <root B>

Tensors (safetensors data and header), npz arrays (dtype, shape, bytes), CSV and TOML files
(bytes), JSON (values, without wall times and the roots' paths), the commands' printed
output (without wall times) and MATLAB .mat variables (through scipy.io.loadmat; the file
header holds the time of writing). PNG files are not compared. Exits 1 on any difference.
Needs numpy and scipy.
"""
import filecmp
import glob
import json
import os
import struct
import sys

import numpy as np
import scipy.io

a, b = sys.argv[1], sys.argv[2]
bad = 0
n = 0


def report(ok, what):
    global bad, n
    n += 1
    if not ok:
        bad += 1
        print("DIFF", what)


def load_json(p, root):
    d = json.loads(open(p).read().replace(root, "ROOT"))
    if isinstance(d, dict):
        d.pop("wall_seconds", None)
        if d.get("mat_file"):
            d["mat_file"] = os.path.basename(d["mat_file"]).rsplit("_", 1)[0]
    return d


def safetensors(p):
    raw = open(p, "rb").read()
    k = struct.unpack("<Q", raw[:8])[0]
    # The metadata is a map whose key order differs between runs: compare it parsed.
    return json.loads(raw[8:8 + k]), raw[8 + k:]


def printed(p, root):
    out = []
    for line in open(p).read().replace(root, "ROOT").splitlines():
        if line.startswith("simulated "):
            line = line.split(" in ")[0]
        elif "wall_seconds" in line:
            line = "wall"
        if '"mat_file"' in line:
            line = line[: line.rfind("_")]
        out.append(line)
    return out


def arrays_equal(x, y, keys):
    return all(
        x[k].dtype == y[k].dtype and x[k].shape == y[k].shape and x[k].tobytes() == y[k].tobytes()
        for k in keys
    )


for ra in sorted(glob.glob(f"{a}/**/*", recursive=True)):
    rel = os.path.relpath(ra, a)
    rb = os.path.join(b, rel)
    if os.path.isdir(ra) or rel.endswith((".png", ".mat")):
        continue
    if not os.path.exists(rb):
        report(False, f"{rel}: missing in {b}")
    elif rel.endswith(".safetensors"):
        report(safetensors(ra) == safetensors(rb), rel)
    elif rel.endswith((".csv", ".toml")):
        report(filecmp.cmp(ra, rb, shallow=False), rel)
    elif rel.endswith(".npz"):
        x, y = np.load(ra), np.load(rb)
        report(sorted(x.files) == sorted(y.files) and arrays_equal(x, y, x.files), rel)
    elif rel.endswith(".json"):
        report(load_json(ra, a) == load_json(rb, b), rel)
    elif rel.endswith(".txt"):
        report(printed(ra, a) == printed(rb, b), rel)
for ma in glob.glob(f"{a}/*/*.mat"):
    d = os.path.dirname(os.path.relpath(ma, a))
    mb = glob.glob(f"{b}/{d}/*.mat")
    if len(mb) != 1:
        report(False, f"{d}/*.mat missing in {b}")
        continue
    x, y = scipy.io.loadmat(ma), scipy.io.loadmat(mb[0])
    keys = [k for k in x if not k.startswith("__")]
    same_keys = sorted(keys) == sorted(k for k in y if not k.startswith("__"))
    report(same_keys and arrays_equal(x, y, keys), f"{d}/.mat variables ({len(keys)})")
print(f"{n - bad} of {n} files identical")
sys.exit(1 if bad else 0)
