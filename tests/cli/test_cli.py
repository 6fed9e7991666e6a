#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The moelab CLI's contracts, checked from the outside.

  - `moelab logits` writes float32 LE [n_tokens][n_vocab] matching the fixtures'
    refs; `--gen N` prints the greedy ids and writes each step's logits;
  - `tokenize --jsonl` reproduces the reference ids; `inspect --json` parses;
  - `run` stops on SIGINT with exit code 130 and its summary, also while all text is
    held back, and draws a status line only when stderr is a terminal;
  - `inspect --config docs/shapes/*.json` gives the published total / active
    parameter counts of Qwen3.6-27B and Qwen3.5-397B-A17B within 1%;
  - `inspect` reports the Llama 3.1 rope-scaling parameters, per-layer kinds,
    the shared-expert gate and the DeltaNet value-head tiling;
  - every failure (missing, truncated or corrupted GGUF file or HF folder, bad
    option, invalid UTF-8) prints exactly ONE line on stderr and exits non-zero,
    never by signal.

usage: test_cli.py MOELAB_BINARY FIXTURES_DIR   (exit 77 = fixtures absent: skipped)
"""
import array, json, math, os, pty, re, select, shutil, signal, struct, subprocess, sys, tempfile, time

binary, fixtures = sys.argv[1], sys.argv[2]
if not os.path.exists(os.path.join(fixtures, "manifest.json")):
    print(f"SKIPPED: fixtures not found at {fixtures}")
    sys.exit(77)
manifest = json.load(open(os.path.join(fixtures, "manifest.json")))
models = {m["name"]: m for m in manifest["models"]}
passed = failed = 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
    else:
        failed += 1
        print(f"FAILED: {name} {detail}")


def moelab(*args, stdin=None):
    return subprocess.run([binary, *args], capture_output=True, text=True, errors="replace", input=stdin)


def read_f32(path):
    a = array.array("f")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    return a


tmp = tempfile.mkdtemp(prefix="moelab-cli-")
out, gen_out, routing = (os.path.join(tmp, n) for n in ("out.f32", "gen.f32", "routing.json"))

# logits: every position, both formats, and the greedy decode
for name in ("llama-dense", "qwen2-moe", "qwen35-moe"):
    m = models[name]
    case = m["cases"][0]
    for fmt in ("gguf", "hf"):
        r = moelab("logits", "--model", os.path.join(fixtures, m[fmt]), "--tokens", ",".join(map(str, case["tokens"])),
                   "--out", out, "--gen", str(len(case["greedy"])), "--gen-out", gen_out, "--routing", routing)
        check(f"logits {name} {fmt} exit", r.returncode == 0, r.stderr)
        if r.returncode:
            continue
        got, ref = read_f32(out), read_f32(os.path.join(fixtures, case["logits"]))
        check(f"logits {name} {fmt} size", len(got) == len(ref) == len(case["tokens"]) * m["n_vocab"])
        worst = max(abs(a - b) for a, b in zip(got, ref))
        check(f"logits {name} {fmt} values", worst <= m["tolerance"]["max_abs_logit"], f"max diff {worst}")
        check(f"logits {name} {fmt} greedy", json.loads(r.stdout) == case["greedy"], r.stdout)
        gen, gen_ref = read_f32(gen_out), read_f32(os.path.join(fixtures, case["gen_logits"]))
        worst = max(abs(a - b) for a, b in zip(gen, gen_ref))
        check(f"gen {name} {fmt}", len(gen) == len(gen_ref) and worst <= m["tolerance"]["max_abs_logit"], f"{worst}")
        trace = json.load(open(routing))
        # One entry per (layer, position) for MoE models; dense models route nothing.
        n_entries = (len(case["tokens"]) + len(case["greedy"])) * trace["n_layer"] if trace["n_expert"] else 0
        check(f"routing {name} {fmt}", len(trace["routing"]) == n_entries and
              all(len(e["experts"]) == trace["n_expert_used"] for e in trace["routing"]))

# tokenize --jsonl against the public reference ids
fullvocab = models["qwen3-dense-fullvocab"]
r = moelab("tokenize", "--model", os.path.join(fixtures, fullvocab["gguf"]),
           "--jsonl", os.path.join(fixtures, "tokenizer/qwen3_public.jsonl"))
check("tokenize --jsonl exit", r.returncode == 0, r.stderr)
reference = [json.loads(l) for l in open(os.path.join(fixtures, "tokenizer/qwen3_public.jsonl"), encoding="utf-8")]
lines = [json.loads(l) for l in r.stdout.splitlines()]
check("tokenize --jsonl ids", len(lines) == len(reference) and all(a["ids"] == b["ids"] for a, b in zip(lines, reference)))

# inspect --json and run
r = moelab("inspect", "--json", os.path.join(fixtures, models["qwen3-moe"]["hf"]))
check("inspect --json", r.returncode == 0 and json.loads(r.stdout)["cost"]["active_params"] <
      json.loads(r.stdout)["cost"]["total_params"], r.stderr)

def inspect_json(path):
    r = moelab("inspect", "--json", path)
    check(f"inspect {os.path.basename(path)} exit", r.returncode == 0, r.stderr)
    return json.loads(r.stdout)["hyperparameters"] if r.returncode == 0 else {}


def hf_config(name):
    return json.load(open(os.path.join(fixtures, models[name]["hf"], "config.json")))


# Llama 3.1 RoPE scaling: the HF folder states the four parameters (config.json's rope_scaling);
# the GGUF twin keeps only the per-plane divisors, which run from 1 (kept) to `factor` (slowed),
# the fixture's tiny original context making both ends occur.
scaling = hf_config("llama31-dense")["rope_scaling"]
hf = inspect_json(os.path.join(fixtures, models["llama31-dense"]["hf"]))
gg = inspect_json(os.path.join(fixtures, models["llama31-dense"]["gguf"]))
if hf and gg:
    got = hf.get("rope_scaling", {})
    check("inspect llama31 hf rope_scaling", got.get("type") == "llama3" and got.get("factor") == scaling["factor"] and
          got.get("low_freq_factor") == scaling["low_freq_factor"] and
          got.get("high_freq_factor") == scaling["high_freq_factor"] and
          got.get("original_context") == scaling["original_max_position_embeddings"], str(got))
    planes = hf["rope_dims"] // 2
    check("inspect llama31 divisors", got.get("divisors") == gg.get("rope_scaling", {}).get("divisors") ==
          {"n": planes, "min": 1.0, "max": scaling["factor"]}, f"{got} {gg.get('rope_scaling')}")
    check("inspect llama31 gguf has no parameters", "factor" not in gg.get("rope_scaling", {}), str(gg.get("rope_scaling")))
    check("inspect llama-dense unscaled", "rope_scaling" not in inspect_json(os.path.join(fixtures, models["llama-dense"]["gguf"])))
r = moelab("inspect", os.path.join(fixtures, models["llama31-dense"]["hf"]))
line = next((l for l in r.stdout.splitlines() if l.split()[:1] == ["rope_scaling"]), "")
check("inspect llama31 text", r.returncode == 0 and f'"low_freq_factor":{scaling["low_freq_factor"]}' in line, line)

# Qwen3.5 hybrid: one letter per layer (A attention, D Gated DeltaNet) as config.json's layer_types
# say, in both formats; value heads are tiled over key heads in GGUF only (the fixtures' README).
kinds = "".join("D" if t == "linear_attention" else "A" for t in hf_config("qwen35-dense")["layer_types"])
for fmt, tiled in (("gguf", True), ("hf", False)):
    h = inspect_json(os.path.join(fixtures, models["qwen35-dense"][fmt]))
    check(f"inspect qwen35 {fmt} layer_kinds", h.get("layer_kinds") == kinds and
          h.get("n_deltanet_layers") == kinds.count("D"), str(h.get("layer_kinds")))
    check(f"inspect qwen35 {fmt} value heads", h.get("ssm_value_heads_tiled") is tiled, str(h.get("ssm_value_heads_tiled")))
    # The shared expert's sigmoid gate: Qwen2-MoE has one (shared_expert_intermediate_size), Qwen3-MoE no shared expert.
    for name, gated in (("qwen2-moe", True), ("qwen3-moe", False)):
        h = inspect_json(os.path.join(fixtures, models[name][fmt]))
        check(f"inspect {name} {fmt} shared_expert_gate", h.get("shared_expert_gate") is gated and
              (h.get("n_ff_shexp", 0) > 0) == gated, str(h))

r = moelab("run", "--model", os.path.join(fixtures, fullvocab["hf"]), "--prompt", "Hello", "--chat", "-n", "5")
check("run --chat", r.returncode == 0 and "decode:" in r.stderr, r.stderr)

check("run: no status line when stderr is not a terminal", "\r" not in r.stderr and "\033[K" not in r.stderr,
      repr(r.stderr))

# run + Ctrl-C: SIGINT stops a long generation cleanly, exit 130 (128 + SIGINT) with the summary.
# stderr is a pseudo-terminal, so the status line is drawn there (stdout, a pipe, gets the text).
small = os.path.join(fixtures, models["qwen3-dense"]["gguf"])
long_run = [binary, "run", "--model", small, "--prompt", "Hello world", "-n", "100000", "-t", "2"]


class OnTerminal:
    """`moelab run` with stderr on a pseudo-terminal; .shown collects what it drew there."""

    def __init__(self, args):
        self.master, slave = pty.openpty()
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        self.shown = b""

    def read_until(self, marker, timeout):
        deadline = time.time() + timeout
        while marker not in self.shown and time.time() < deadline:
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    self.shown += os.read(self.master, 4096)
                except OSError:  # EIO: the process closed the terminal
                    break
        return marker in self.shown

    def interrupt(self, what):
        """SIGINT, then (stdout, stderr as text, exit code)."""
        self.p.send_signal(signal.SIGINT)
        try:
            stdout, _ = self.p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            check(what, False, "still running 10 s after SIGINT")
            stdout, _ = self.p.communicate()
        self.read_until(b"stopped: ", 5)
        os.close(self.master)
        return stdout, self.shown.decode(errors="replace"), self.p.returncode


def decode_summary(stderr):
    m = re.search(r"\ndecode: (\d+) tokens in .*stopped: (\S+)", stderr)
    return (int(m.group(1)), m.group(2)) if m else (None, None)


# The decode status line is drawn once the first token has gone through the model, so seeing it
# means decode is under way (the SIGINT handler is installed before any status line is drawn).
# The status line then changes at most every 250 ms: wait for one redraw.
run = OnTerminal(long_run)
check("run status line: prefill", run.read_until(b"\r\033[Kprefill: ", 10), repr(run.shown))
check("run status line: decode", run.read_until(b"\r\033[Kdecode: ", 10), repr(run.shown))
run.read_until(b"\0never drawn", 0.6)  # just collect what is drawn for 0.6 s
check("run status line: redrawn", run.shown.count(b"\r\033[Kdecode: ") >= 2, repr(run.shown))
stdout, shown, rc = run.interrupt("run SIGINT")
n_decoded, reason = decode_summary(shown)
check("run SIGINT exit 130", rc == 130, f"rc={rc} stderr={shown!r}")
check("run SIGINT summary", "\nprompt: " in shown and reason == "cancelled" and n_decoded and n_decoded < 100000, repr(shown))
check("run SIGINT: status line erased before the summary", "\033[K\r\n" in shown, repr(shown[-300:]))
check("run SIGINT: text streamed", len(stdout) > 1, repr(stdout[:100]))

# run + Ctrl-C while every generated character is held back: with a stop string that the whole
# text so far could begin, nothing is written, yet SIGINT is still seen. The stop string is this
# greedy run's own first 2000 tokens of text plus a byte that does not follow them; SIGINT goes
# as soon as the decode status line appears, when the first token has gone through the model.
r = subprocess.run([binary, "run", "--model", small, "--prompt", "Hello world", "-n", "2000", "-t", "2"],
                   capture_output=True, stdin=subprocess.DEVNULL)
check("run for a stop string", r.returncode == 0 and r.stdout.endswith(b"\n"), r.stderr)
prefix = r.stdout[:-1].split(b"\0")[0]  # argv cannot carry NUL; any prefix of the text works
check("run stop-string prefix long enough", len(prefix) > 500, f"{len(prefix)} bytes")
run = OnTerminal(long_run + ["--stop", prefix + b"\x01"])
check("run held back: decode status", run.read_until(b"\r\033[Kdecode: ", 10), repr(run.shown))
stdout, shown, rc = run.interrupt("run SIGINT held back")
n_decoded, reason = decode_summary(shown)
check("run SIGINT held back exit 130", rc == 130, f"rc={rc} terminal={shown!r}")
check("run SIGINT held back summary", reason == "cancelled" and n_decoded is not None and 1 <= n_decoded < 2000,
      repr(shown[-300:]))
check("run SIGINT held back: no text", stdout == b"\n", repr(stdout[:100]))

# inspect --config on the real shapes in docs/shapes: total and active parameters within 1% of the
# published figures (Qwen3.6-27B: 26.9B; Qwen3.5-397B-A17B: 396B total, 17.2-17.4B active), and the
# docs/qwen35.md explanation of 17.35B vs ~17.2B: without the routers (n_layer x n_expert x n_embd) it is 17.2B.
shapes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "shapes")
def within(value, low, high, rel=0.01):
    return low * (1 - rel) <= value <= high * (1 + rel)
for config, total, active_low, active_high in (("qwen3.6-27b.config.json", 26.9e9, 26.9e9, 26.9e9),
                                                ("qwen3.5-397b-a17b.config.json", 396e9, 17.2e9, 17.4e9)):
    r = moelab("inspect", "--config", os.path.join(shapes, config), "--json")
    check(f"inspect --config {config} exit", r.returncode == 0, r.stderr)
    if r.returncode:
        continue
    info = json.loads(r.stdout)
    cost, hyper = info["cost"], info["hyperparameters"]
    check(f"inspect --config {config} total", within(cost["total_params"], total, total), str(cost))
    check(f"inspect --config {config} active", within(cost["active_params"], active_low, active_high), str(cost))
    if "n_expert" in hyper:
        routers = hyper["n_layer"] * hyper["n_expert"] * hyper["n_embd"]
        check(f"inspect --config {config} active without routers", within(cost["active_params"] - routers, 17.2e9, 17.2e9),
              f"{cost['active_params']} - {routers}")
    else:
        check(f"inspect --config {config} dense: active == total", cost["active_params"] == cost["total_params"], str(cost))

# synth --dtype q4_k writes a quantized GGUF: inspect reports 4.5 bits per Q4_K weight (144-byte blocks of 256),
# f32 for norms and the router, and the byte-weighted overall; the model runs.
tiny_q4k = os.path.join(tmp, "tiny-q4_k.gguf")
r = moelab("synth", "--out", tiny_q4k, "--arch", "qwen3moe", "--d-model", "256", "--layers", "1", "--heads", "2",
           "--kv-heads", "1", "--head-dim", "128", "--experts", "4", "--k", "2", "--expert-ff", "256", "--vocab", "300",
           "--dtype", "q4_k")
check("synth --dtype q4_k", r.returncode == 0, r.stderr)
r = moelab("inspect", "--json", tiny_q4k)
check("inspect q4_k exit", r.returncode == 0, r.stderr)
if r.returncode == 0:
    info = json.loads(r.stdout)
    by_name = {t["name"]: t for t in info["tensors"]}
    q4k = [t for t in info["tensors"] if t["dtype"] == "Q4_K"]
    check("inspect q4_k tensors", len(q4k) == 9 and all(t["bits_per_weight"] == 4.5 for t in q4k),
          str([(t["name"], t["dtype"], t["bits_per_weight"]) for t in info["tensors"]]))
    check("inspect q4_k router f32", by_name["blk.0.ffn_gate_inp.weight"]["bits_per_weight"] == 32.0)
    total_bytes = sum(t["bytes"] for t in info["tensors"])
    total_elements = sum(math.prod(t["shape"]) for t in info["tensors"])
    check("inspect q4_k overall", abs(info["weights"]["bits_per_weight"] - 8 * total_bytes / total_elements) < 1e-9 and
          4.5 < info["weights"]["bits_per_weight"] < 4.6, str(info["weights"]))
r = moelab("logits", "--model", tiny_q4k, "--tokens", "1,2,3", "--out", out)
check("logits q4_k synthetic", r.returncode == 0 and len(read_f32(out)) == 3 * 300, r.stderr)

# failures: one line on stderr, non-zero exit, the culprit named
gguf = os.path.join(fixtures, models["qwen3-moe"]["gguf"])
data = open(gguf, "rb").read()
def write(name, payload):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(payload)
    return path
bad_utf8 = write("bad_utf8.txt", b"abc\xff\xfe")
os.makedirs(os.path.join(tmp, "empty_folder"), exist_ok=True)


# Hugging Face folders, each a copy of qwen3-dense.hf with one thing wrong.
hf_source = os.path.join(fixtures, models["qwen3-dense"]["hf"])
def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return {name: (e["dtype"], e["shape"], raw[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]])
            for name, e in header.items()}
def safetensors_bytes(tensors):
    header, data = {}, b""
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data
def hf_folder(name, edit):
    folder = os.path.join(tmp, name)
    shutil.copytree(hf_source, folder)
    for f in os.listdir(folder):
        os.chmod(os.path.join(folder, f), 0o644)
    edit(folder)
    return folder
def long_header(folder):
    path = os.path.join(folder, "model.safetensors")
    raw = open(path, "rb").read()
    open(path, "wb").write(struct.pack("<Q", len(raw) + 1000) + raw[8:])
def config_without(key):
    def edit(folder):
        path = os.path.join(folder, "config.json")
        config = json.load(open(path))
        del config[key]
        json.dump(config, open(path, "w"))
    return edit
def config_with(key, value):
    def edit(folder):
        path = os.path.join(folder, "config.json")
        config = json.load(open(path))
        config[key] = value
        json.dump(config, open(path, "w"))
    return edit
dropped = "model.layers.1.mlp.up_proj.weight"
def drop_tensor(folder):
    tensors = read_safetensors(os.path.join(folder, "model.safetensors"))
    del tensors[dropped]
    write(os.path.join(folder, "model.safetensors"), safetensors_bytes(tensors))
def drop_from_index(folder):  # two shards; the index omits the second shard's one tensor
    tensors = read_safetensors(os.path.join(folder, "model.safetensors"))
    os.remove(os.path.join(folder, "model.safetensors"))
    second = {dropped: tensors.pop(dropped)}
    write(os.path.join(folder, "model-00001-of-00002.safetensors"), safetensors_bytes(tensors))
    write(os.path.join(folder, "model-00002-of-00002.safetensors"), safetensors_bytes(second))
    index = {"metadata": {}, "weight_map": {name: "model-00001-of-00002.safetensors" for name in tensors}}
    json.dump(index, open(os.path.join(folder, "model.safetensors.index.json"), "w"))
hf_ok = hf_folder("hf_ok", lambda folder: None)
hf_intermediate = hf_config("qwen3-dense")["intermediate_size"]
hf_failures = [
    (["inspect", hf_folder("hf_long_header", long_header)], ["model.safetensors", "header"]),
    (["inspect", hf_folder("hf_no_hidden_size", config_without("hidden_size"))], ["config.json", "hidden_size"]),
    (["logits", "--model", hf_folder("hf_no_vocab_size", config_without("vocab_size")), "--tokens", "1", "--out", out],
     ["config.json", "vocab_size"]),
    (["inspect", hf_folder("hf_dropped_tensor", drop_tensor)], ["hf_dropped_tensor", "missing tensor", dropped]),
    (["run", "--model", hf_folder("hf_dropped_from_index", drop_from_index), "--prompt", "x", "-n", "1"],
     ["hf_dropped_from_index", "missing tensor", dropped]),
    (["inspect", hf_folder("hf_wrong_shape", config_with("intermediate_size", hf_intermediate + 1))],
     ["hf_wrong_shape", "shape", str(hf_intermediate + 1)]),
    # Invalid UTF-8 straight from argv (os.fsdecode keeps the raw bytes through subprocess).
    (["tokenize", "--model", hf_ok, "--text", os.fsdecode(b"abc\xff\xfe")], ["--text", "invalid UTF-8"]),
    (["run", "--model", hf_ok, "--prompt", os.fsdecode(b"caf\xc3"), "-n", "1"], ["--prompt", "invalid UTF-8"]),
    (["run", "--model", gguf, "--prompt", os.fsdecode(b"\xed\xa0\x80"), "-n", "1"], ["--prompt", "invalid UTF-8"]),
]
for args, culprits in hf_failures:
    r = moelab(*args)
    lines = r.stderr.strip().splitlines()
    check(f"error {' '.join(os.path.basename(a) for a in args[:2])}",
          r.returncode > 0 and len(lines) == 1 and all(c in lines[0] for c in culprits),
          f"rc={r.returncode} stderr={r.stderr!r}")
# The unedited copy works, so each failure above is the edit's doing.
r = moelab("inspect", hf_ok)
check("inspect hf copy", r.returncode == 0, r.stderr)

failures = [
    (["inspect", os.path.join(tmp, "missing.gguf")], "missing.gguf"),
    (["inspect", write("truncated.gguf", data[:1000])], "truncated.gguf"),
    (["inspect", write("magic.gguf", b"GGUX" + data[4:])], "magic.gguf"),
    (["inspect", write("version.gguf", data[:4] + (99).to_bytes(4, "little") + data[8:])], "version.gguf"),
    (["inspect", os.path.join(tmp, "empty_folder")], "empty_folder"),
    (["logits", "--model", gguf, "--tokens", "1,2,99999", "--out", out], "99999"),
    (["logits", "--model", gguf, "--tokens", "1,x", "--out", out], "--tokens"),
    (["logits", "--model", gguf, "--tokens", "1", "--out", out, "--backend", "fpga"], "fpga"),
    (["logits", "--model", gguf, "--tokens", "1", "--out", os.path.join(tmp, "no/such/dir/out.f32")], "out.f32"),
    (["tokenize", "--model", gguf, "--file", bad_utf8], "invalid UTF-8"),
    (["run", "--model", gguf, "--prompt", "x", "--chat"], "chat template"),
    (["run", "--model", gguf, "--prompt", "x", "--bogus", "1"], "--bogus"),
    (["frobnicate"], "frobnicate"),
    (["synth", "--out", os.path.join(tmp, "bad-q4_k.gguf"), "--d-model", "100", "--dtype", "q4_k"], "--d-model"),
    (["synth", "--out", os.path.join(tmp, "bad-q3.gguf"), "--dtype", "q3_k"], "q3_k"),
]
for args, culprit in failures:
    r = moelab(*args)
    lines = r.stderr.strip().splitlines()
    check(f"error {' '.join(args[:2])}", r.returncode > 0 and len(lines) == 1 and culprit in lines[0],
          f"rc={r.returncode} stderr={r.stderr!r}")

# truncations at many offsets: always one clean line, never a crash
for cut in range(0, len(data), max(1, len(data) // 97)):
    r = moelab("inspect", write("cut.gguf", data[:cut]))
    check(f"truncated at {cut}", r.returncode > 0 and len(r.stderr.strip().splitlines()) == 1,
          f"rc={r.returncode} stderr={r.stderr!r}")

shutil.rmtree(tmp, ignore_errors=True)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
