#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""How far an opt-in reduced-precision activation mode (int8, or bf16 with --activations bf16)
moves the logits, next to llama.cpp's own quantized path.

For every quantized fixture model (manifest entries with `logits_exact`) and prompt case, runs
`moelab logits --activations int8` with each backend given and prints a markdown table: max and
mean |diff| against `logits_exact` (llama.cpp in f32 on the exactly dequantised weights) for
moelab int8 and for llama.cpp's quantized `logits`, and top-1 agreement with `logits_exact`.

usage: scripts/int8_accuracy.py MOELAB_BINARY [FIXTURES_DIR] [--backends highway,scalar] [--activations int8|bf16]
"""
import argparse, json, os, subprocess, sys, tempfile

try:
    import numpy as np
except ImportError:  # Debian's python3-numpy (scripts/setup.sh) is under /usr/bin/python3
    sys.exit("int8_accuracy.py needs numpy (apt-get install python3-numpy; run it with /usr/bin/python3)")

here = os.path.dirname(os.path.abspath(__file__))
parser = argparse.ArgumentParser()
parser.add_argument("moelab")
parser.add_argument("fixtures", nargs="?", default=os.path.join(here, "..", "..", "shared", "fixtures"))
parser.add_argument("--backends", default="highway")
parser.add_argument("--activations", default="int8", choices=["int8", "bf16"],
                    help="the mode to measure; bf16 runs the BF16 fixture models only")
args = parser.parse_args()
mode = args.activations

manifest = json.load(open(os.path.join(args.fixtures, "manifest.json")))
print(f"| model | case | backend | {mode}: max / mean \\|Δ\\| vs exact | llama.cpp: max / mean \\|Δ\\| vs exact "
      f"| {mode} vs llama.cpp: max / mean \\|Δ\\| | top-1 = exact: {mode} / llama.cpp |")
print("|---|---|---|---:|---:|---:|---:|")
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "logits.f32")
    for m in manifest["models"]:
        if not m["cases"] or "logits_exact" not in m["cases"][0]:
            continue
        if mode == "bf16" and m.get("weights") != "BF16":
            continue
        V = m["n_vocab"]
        for ci, case in enumerate(m["cases"]):
            exact = np.fromfile(os.path.join(args.fixtures, case["logits_exact"]), dtype="<f4").reshape(-1, V)
            llama = np.fromfile(os.path.join(args.fixtures, case["logits"]), dtype="<f4").reshape(-1, V)
            for backend in args.backends.split(","):
                subprocess.run([args.moelab, "logits", "--model", os.path.join(args.fixtures, m["gguf"]),
                                "--tokens", ",".join(map(str, case["tokens"])), "--out", out,
                                "--backend", backend, "--activations", mode], check=True)
                mine = np.fromfile(out, dtype="<f4").reshape(-1, V)
                d, dl, dm = np.abs(mine - exact), np.abs(llama - exact), np.abs(mine - llama)
                top = exact.argmax(1)
                print(f"| {m['name']} | c{ci} ({len(exact)} tokens) | {backend} | {d.max():.3g} / {d.mean():.3g} "
                      f"| {dl.max():.3g} / {dl.mean():.3g} | {dm.max():.3g} / {dm.mean():.3g} | {(mine.argmax(1) == top).sum()} / {(llama.argmax(1) == top).sum()} of {len(exact)} |")
