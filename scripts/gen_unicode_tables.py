#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Generate include/moelab/tokenizer/unicode_tables.hpp from the Unicode Character Database.

Reads Debian's `unicode-data` package (/usr/share/unicode by default):
  UnicodeData.txt               general category (field 2), canonical combining class (field 3),
                                decomposition mapping (field 5; canonical when it has no <tag>)
  PropList.txt                  White_Space
  DerivedNormalizationProps.txt Full_Composition_Exclusion, NFC_QC
  CompositionExclusions.txt     cross-check of Full_Composition_Exclusion (UAX #15, section 5)

and writes sorted tables the C++ side searches with std::upper_bound:
  letter_ranges, number_ranges   general categories L* and N* (what regex \\p{L}, \\p{N} match)
  white_space_ranges             White_Space (what Oniguruma's Unicode \\s matches)
  combining_classes              runs of equal nonzero canonical combining class
  decompositions + pool          *full* canonical decomposition of each code point (recursively
                                 expanded here, so the C++ side never recurses); Hangul excluded
  compositions                   primary composites: (first, second) -> composite, exclusions removed
  nfc_quick_check_not_yes        NFC_QC = No or Maybe (a fast path: text without them and without
                                 nonzero combining classes is already NFC)

Usage: scripts/gen_unicode_tables.py [--ucd DIR] [--out FILE]   (writes FILE; '-' = stdout)
       scripts/gen_unicode_tables.py --check [--ucd DIR] [--out FILE]
Deterministic: the same input files give byte-identical output (no dates, sorted everything).
--check regenerates in memory and compares with FILE: exit 0 when identical, 1 when not, 77
(a skip, for ctest) when the Unicode data files are not installed.
"""
import argparse
import os
import re
import sys

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                yield line


def parse_range(text):
    if ".." in text:
        a, b = text.split("..")
        return int(a, 16), int(b, 16)
    return int(text, 16), int(text, 16)


def read_unicode_data(path):
    """Return {code point: (category, ccc, decomposition field)} with <..., First>/<..., Last> expanded."""
    data = {}
    pending_first = None
    for line in read_lines(path):
        fields = line.split(";")
        cp, name, category, ccc, decomposition = int(fields[0], 16), fields[1], fields[2], int(fields[3]), fields[5]
        if name.endswith(", First>"):
            pending_first = cp
            continue
        if name.endswith(", Last>"):
            assert pending_first is not None, f"unpaired range end at {cp:04X}"
            for c in range(pending_first, cp + 1):
                data[c] = (category, ccc, decomposition)
            pending_first = None
            continue
        data[cp] = (category, ccc, decomposition)
    return data


def read_property(path, name, value=None):
    """Code points with property `name` (and, for enumerated properties, the given values)."""
    out = set()
    for line in read_lines(path):
        fields = [f.strip() for f in line.split(";")]
        if fields[1] != name:
            continue
        if value is not None and (len(fields) < 3 or fields[2] not in value):
            continue
        first, last = parse_range(fields[0])
        out.update(range(first, last + 1))
    return out


def to_ranges(code_points):
    ranges = []
    for cp in sorted(code_points):
        if ranges and ranges[-1][1] + 1 == cp:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return ranges


def emit_array(out, decl, items, per_line):
    out.append(f"inline constexpr {decl}[] = {{")
    for i in range(0, len(items), per_line):
        out.append("    " + " ".join(item + "," for item in items[i:i + per_line]))
    out.append("};")
    out.append("")


def hx(cp):
    return f"0x{cp:04X}"


def generate(ucd):
    data = read_unicode_data(os.path.join(ucd, "UnicodeData.txt"))
    version_line = open(os.path.join(ucd, "DerivedNormalizationProps.txt"), encoding="utf-8").readline()
    match = re.search(r"-(\d+\.\d+\.\d+)\.txt", version_line)
    assert match, "cannot find the Unicode version in DerivedNormalizationProps.txt"
    version = match.group(1)

    letters = {cp for cp, (cat, _, _) in data.items() if cat.startswith("L")}
    numbers = {cp for cp, (cat, _, _) in data.items() if cat.startswith("N")}
    white_space = read_property(os.path.join(ucd, "PropList.txt"), "White_Space")

    # Combining classes as runs of equal value.
    ccc_runs = []
    for cp in sorted(cp for cp, (_, ccc, _) in data.items() if ccc != 0):
        ccc = data[cp][1]
        if ccc_runs and ccc_runs[-1][1] + 1 == cp and ccc_runs[-1][2] == ccc:
            ccc_runs[-1][1] = cp
        else:
            ccc_runs.append([cp, cp, ccc])

    # Canonical decompositions (no <tag>), one level as in the file.
    canonical = {}
    for cp, (_, _, decomposition) in data.items():
        if decomposition and not decomposition.startswith("<"):
            canonical[cp] = [int(x, 16) for x in decomposition.split()]

    def full_decomposition(cp):
        if cp not in canonical:
            return [cp]
        return [d for part in canonical[cp] for d in full_decomposition(part)]

    # Composition exclusions: the derived property, cross-checked against its definition
    # (UAX #15: CompositionExclusions.txt + singletons + non-starter decompositions).
    full_exclusion = read_property(os.path.join(ucd, "DerivedNormalizationProps.txt"),
                                   "Full_Composition_Exclusion")
    listed = {parse_range(line.split(";")[0].strip())[0]
              for line in read_lines(os.path.join(ucd, "CompositionExclusions.txt"))}
    singletons = {cp for cp, d in canonical.items() if len(d) == 1}
    non_starter = {cp for cp, d in canonical.items()
                   if len(d) > 1 and (data[cp][1] != 0 or data.get(d[0], ("", 0, ""))[1] != 0)}
    derived = listed | singletons | non_starter
    assert derived == full_exclusion, f"Full_Composition_Exclusion mismatch: {sorted(derived ^ full_exclusion)[:10]}"

    compositions = sorted((d[0], d[1], cp) for cp, d in canonical.items()
                          if len(d) == 2 and cp not in full_exclusion)

    nfc_not_yes = read_property(os.path.join(ucd, "DerivedNormalizationProps.txt"), "NFC_QC", {"N", "M"})

    # Full decompositions packed into one pool; all decompositions fit uint16 offsets.
    pool, decomposition_rows = [], []
    for cp in sorted(canonical):
        assert not (HANGUL_FIRST <= cp <= HANGUL_LAST)
        full = full_decomposition(cp)
        decomposition_rows.append((cp, len(pool), len(full)))
        pool.extend(full)
    assert len(pool) < 65536 and max(r[2] for r in decomposition_rows) < 256

    out = [
        "// SPDX-License-Identifier: MIT",
        f"// generated by scripts/gen_unicode_tables.py from Unicode {version} — do not edit",
        "//",
        "// moelab/tokenizer/unicode_tables.hpp — Unicode Character Database tables for the tokenizer:",
        "// general categories L* and N*, White_Space, canonical combining classes, full canonical",
        "// decompositions, primary compositions and NFC_QC != Yes. Every table is sorted by code point",
        "// and searched with std::upper_bound (moelab/tokenizer/unicode.hpp). Hangul syllables are",
        "// not listed: NFC handles them algorithmically (Unicode 15.0, section 3.12).",
        "//",
        "// Depends on: the standard library only.",
        "#pragma once",
        "",
        "#include <cstdint>",
        "",
        "namespace moelab::detail::unicode_tables {",
        "",
        f'inline constexpr const char* unicode_version = "{version}";',
        "",
        "struct Range { char32_t first, last; };  // inclusive",
        "struct CombiningClassRange { char32_t first, last; std::uint8_t ccc; };",
        "struct Decomposition { char32_t code_point; std::uint16_t offset, length; };  // into decomposition_pool",
        "struct Composition { char32_t first, second, composite; };  // sorted by (first, second)",
        "",
    ]
    total = lambda rs: sum(r[1] - r[0] + 1 for r in rs)
    for name, comment, cps in [
        ("letter_ranges", "General_Category L* (Lu Ll Lt Lm Lo)", letters),
        ("number_ranges", "General_Category N* (Nd Nl No)", numbers),
        ("white_space_ranges", "PropList White_Space", white_space),
        ("nfc_quick_check_not_yes", "DerivedNormalizationProps NFC_QC = N or M", nfc_not_yes),
    ]:
        ranges = to_ranges(cps)
        out.append(f"// {comment}: {len(ranges)} ranges, {total(ranges)} code points.")
        emit_array(out, f"Range {name}", [f"{{{hx(a)}, {hx(b)}}}" for a, b in ranges], 6)
    out.append(f"// Canonical_Combining_Class != 0: {len(ccc_runs)} runs.")
    emit_array(out, "CombiningClassRange combining_classes",
               [f"{{{hx(a)}, {hx(b)}, {c}}}" for a, b, c in ccc_runs], 5)
    out.append(f"// Full canonical decompositions of {len(decomposition_rows)} code points.")
    emit_array(out, "Decomposition decompositions",
               [f"{{{hx(cp)}, {o}, {n}}}" for cp, o, n in decomposition_rows], 5)
    emit_array(out, "char32_t decomposition_pool", [hx(cp) for cp in pool], 10)
    out.append(f"// Primary composites (canonical pairs minus Full_Composition_Exclusion): {len(compositions)}.")
    emit_array(out, "Composition compositions",
               [f"{{{hx(a)}, {hx(b)}, {hx(c)}}}" for a, b, c in compositions], 4)
    out.append("}  // namespace moelab::detail::unicode_tables")
    return "\n".join(out) + "\n"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ucd", default="/usr/share/unicode", help="Unicode Character Database folder")
    parser.add_argument("--out", default=os.path.join(here, "..", "include", "moelab", "tokenizer",
                                                      "unicode_tables.hpp"))
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args()
    if args.check and not os.path.exists(os.path.join(args.ucd, "UnicodeData.txt")):
        print(f"SKIPPED: no UnicodeData.txt in {args.ucd} (apt-get install unicode-data)")
        sys.exit(77)
    text = generate(args.ucd)
    if args.check:
        with open(args.out, encoding="utf-8", newline="") as f:
            committed = f.read()
        if committed != text:
            print(f"{args.out} differs from what scripts/gen_unicode_tables.py generates from {args.ucd}; re-run it")
            sys.exit(1)
        print(f"{args.out} is up to date ({len(text)} bytes)")
        return
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)


if __name__ == "__main__":
    main()
