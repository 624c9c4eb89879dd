"""Reads a MAT-file neurode wrote with `scipy.io.loadmat` alone and checks every variable
against a JSON description.

Usage: python3 scripts/check_mat.py FILE EXPECT_JSON
EXPECT_JSON maps each variable name to
  {"kind": "double" | "logical", "shape": [r, c, ...], "data_col_major": [...]}  or
  {"kind": "char", "text": "..."}.
Prints the variables found and one line per variable; exits 1 on any mismatch (shape, class,
a value differing in any bit, or a variable extra or missing).
"""
import json
import sys

import numpy as np
import scipy.io

path, expect_path = sys.argv[1], sys.argv[2]
with open(expect_path, encoding="utf-8") as f:
    expect = json.load(f)
mat = scipy.io.loadmat(path)
found = {k: v for k, v in mat.items() if not k.startswith("__")}
print("found:", {k: (str(v.dtype), v.shape) for k, v in found.items()})
print("header:", mat.get("__header__"))
# The MATLAB class of each variable as the file states it ("double", "char", "logical").
classes = {name: cls for name, _, cls in scipy.io.whosmat(path)}
print("classes:", classes)

errors = []
for name in sorted(set(expect) - set(found)):
    errors.append(f"{name}: missing from the file")
for name in sorted(set(found) - set(expect)):
    errors.append(f"{name}: in the file but not expected")


def check(name, want, got):
    kind = want["kind"]
    if classes.get(name) != kind:
        return False, f"expected MATLAB class {kind}, the file says {classes.get(name)}"
    if kind == "char":
        if got.dtype.kind != "U":
            return False, f"expected char, got dtype {got.dtype}"
        text = want["text"]
        # loadmat gives a char row as a 1-element array of str (chars_as_strings).
        if got.shape != (1,) and not (text == "" and got.size <= 1):
            return False, f"expected one char row, got shape {got.shape}"
        got_text = str(got[0]) if got.size else ""
        if got_text != text:
            return False, f"expected text {text!r}, got {got_text!r}"
        return True, f"char {got_text!r}"
    shape = tuple(want["shape"])
    if got.shape != shape:
        return False, f"expected shape {shape}, got {got.shape}"
    if kind == "double":
        if got.dtype != np.float64:
            return False, f"expected float64, got {got.dtype}"
        exp = np.array(want["data_col_major"], dtype=np.float64)
        flat = got.flatten(order="F")
        # Bit-exact: the values were written exactly.
        if flat.shape != exp.shape or not np.array_equal(flat.view(np.uint64), exp.view(np.uint64)):
            return False, f"values differ: expected {exp.tolist()}, got {flat.tolist()}"
        return True, f"double {shape} {flat.tolist()}"
    if kind == "logical":
        # loadmat returns logical arrays as uint8 0/1; the logical flag is the class above.
        if got.dtype not in (np.uint8, np.bool_):
            return False, f"expected uint8 or bool (logical), got {got.dtype}"
        exp = np.array(want["data_col_major"], dtype=np.uint8)
        flat = got.flatten(order="F").astype(np.uint8)
        if flat.shape != exp.shape or not np.array_equal(flat, exp):
            return False, f"values differ: expected {exp.tolist()}, got {flat.tolist()}"
        return True, f"logical {shape} {flat.tolist()}"
    return False, f"unknown kind {kind!r} in {expect_path}"


for name in sorted(set(expect) & set(found)):
    ok, result = check(name, expect[name], found[name])
    print(f"{'ok' if ok else 'MISMATCH'} {name}: {result}")
    if not ok:
        errors.append(f"{name}: {result}")

if errors:
    print("error: " + "; ".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"all {len(expect)} variables match")
