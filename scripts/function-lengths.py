#!/usr/bin/env python3
"""Product functions in src/ longer than the style's limit (80 lines).

A function's length is counted from the line of its `fn` to the line of its closing brace,
both included. Test code is not product code: `tests.rs` files, files under a `tests/`
folder, and `#[cfg(test)] mod x { ... }` blocks are skipped.

Prints `path:line name length` for each function over the limit, longest first, and exits
1 when there is any (0 and one line otherwise). `--report` prints the same but always exits
0, for `make lint` until every owner's functions are split.

Usage: scripts/function-lengths.py [--report] [--max N] [SRC_DIR]
"""

import re
import sys
from pathlib import Path

FN_RE = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")
TEST_MOD_RE = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+\w+\s*\{")


def blank_out(text: str) -> str:
    """Comments, strings and chars replaced by spaces (newlines kept), so braces and `fn`
    inside them do not count."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not text[i - 1].isalnum()):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = '"' + hashes
            j = text.find(end, i + 2 + len(hashes))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def test_spans(text: str) -> list:
    spans, i = [], 0
    while True:
        m = TEST_MOD_RE.search(text, i)
        if not m:
            return spans
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        spans.append((m.start(), j))
        i = j


def functions(text: str):
    """(name, first line, length in lines) of every fn with a body."""
    skip = test_spans(text)
    for m in FN_RE.finditer(text):
        if any(a <= m.start() < b for a, b in skip):
            continue
        # The body starts at the first `{` after the signature, unless a `;` ends it first
        # (a trait method without a default body).
        j, depth = m.end(), 0
        while j < len(text) and text[j] not in "{;":
            # Generic bounds and argument lists hold no braces, but closures in
            # `where` clauses do not occur in this code base.
            j += 1
        if j >= len(text) or text[j] == ";":
            continue
        start_line = text.count("\n", 0, m.start()) + 1
        k = j
        while k < len(text):
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            k += 1
            if depth == 0:
                break
        end_line = text.count("\n", 0, k) + 1
        yield m.group(1), start_line, end_line - start_line + 1


def main() -> int:
    args = sys.argv[1:]
    report = "--report" in args
    args = [a for a in args if a != "--report"]
    limit = 80
    if "--max" in args:
        k = args.index("--max")
        limit = int(args[k + 1])
        del args[k : k + 2]
    src = Path(args[0] if args else "src")
    long = []
    files = sorted(p for p in src.rglob("*.rs") if p.name != "tests.rs" and "tests" not in p.parts)
    for path in files:
        text = blank_out(path.read_text())
        for name, line, length in functions(text):
            if length > limit:
                long.append((length, f"{path}:{line}", name))
    long.sort(key=lambda t: (-t[0], t[1]))
    if not long:
        print(f"function-lengths: no product function over {limit} lines in {len(files)} files")
        return 0
    print(f"function-lengths: {len(long)} product function(s) over {limit} lines:")
    for length, where, name in long:
        print(f"  {where} {name} {length}")
    return 0 if report else 1


if __name__ == "__main__":
    sys.exit(main())
