#!/usr/bin/env python3
"""Import cycles between the product's modules (src/), as ARCHITECTURE.md's layering forbids.

A module is a file (`src/a.rs` or `src/a/b.rs`). Module A depends on module B when A names a
path under `crate::` that resolves to B (the deepest module file the path reaches). Edges
between a module and its own ancestors or descendants (`super::`, a parent naming its
children) are not counted: a module and its sub-modules are one room. Test code
(`#[cfg(test)]` modules in `tests.rs` files and `mod tests { ... }` blocks) is not counted
either.

Prints every strongly connected component of more than one module, with one path through
it, and exits 1 when there is any; exit 0 and one line otherwise.

Usage: scripts/import-cycles.py [SRC_DIR]
"""

import re
import sys
from pathlib import Path

USE_RE = re.compile(r"\buse\s+((?:crate|super|self)::[^;]+);", re.S)
PATH_RE = re.compile(r"\b((?:crate|super|self)::(?:(?:super|[a-z_][a-z0-9_]*)::)*[a-z_][a-z0-9_]*)")


def absolute(mod: tuple, path: Path, p: str) -> tuple:
    """A `crate::`, `self::` or `super::` path as segments from the crate root."""
    segs = [s for s in p.split("::") if s]
    if segs[0] == "crate":
        return tuple(segs[1:])
    # A file `a/b.rs` or `a.rs` is module a::b / a; `self` is that module.
    base = list(mod)
    if segs[0] == "self":
        return tuple(base + segs[1:])
    while segs and segs[0] == "super":
        base = base[:-1]
        segs = segs[1:]
    return tuple(base + segs)


def module_of(path: Path, src: Path) -> tuple:
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts in (["lib"], ["main"]):
        return ()
    if parts and parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def strip_tests(text: str) -> str:
    """Drop `#[cfg(test)] mod x { ... }` blocks (brace-matched) and line comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    pattern = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+\w+\s*\{")
    while True:
        m = pattern.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j


def expand_use(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"] (a crude but sufficient walk)."""
    tree = re.sub(r"\s+", "", tree)
    depth, start = 0, None
    for k, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = k
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                prefix, inner = tree[:start], tree[start + 1 : k]
                items, d, cur = [], 0, ""
                for c in inner:
                    if c == "," and d == 0:
                        items.append(cur)
                        cur = ""
                        continue
                    d += {"{": 1, "}": -1}.get(c, 0)
                    cur += c
                items.append(cur)
                result = []
                for item in items:
                    if item:
                        result += [prefix + e for e in expand_use(item)]
                return result
    return [tree.split(" as ")[0]]


def main() -> int:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    files = sorted(p for p in src.rglob("*.rs") if p.name != "tests.rs" and "tests" not in p.parts)
    modules = {module_of(p, src): p for p in files}
    graph = {}
    for mod, path in modules.items():
        text = strip_tests(path.read_text())
        paths = []
        for tree in USE_RE.findall(text):
            paths += expand_use(tree)
        paths += PATH_RE.findall(text)
        for p in paths:
            segs = absolute(mod, path, p)
            target = None
            for n in range(len(segs), 0, -1):
                if segs[:n] in modules:
                    target = segs[:n]
                    break
            if target is None or target == mod:
                continue
            if target[: len(mod)] == mod or mod[: len(target)] == target:
                continue  # a module and its own sub-modules
            # Lift both ends to the children of their deepest common ancestor: `a::x`
            # naming `b::y` makes room `a` depend on room `b`.
            common = 0
            while mod[common] == target[common]:
                common += 1
            graph.setdefault(mod[: common + 1], set()).add(target[: common + 1])
            graph.setdefault(target[: common + 1], set())

    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)

    name = lambda m: "::".join(m) or "crate"
    if not sccs:
        print(f"import-cycles: none among {len(modules)} modules")
        return 0
    for comp in sccs:
        print(f"cycle of {len(comp)} modules: {', '.join(name(m) for m in comp)}")
        members = set(comp)
        for m in comp:
            inside = sorted(name(t) for t in graph[m] if t in members)
            print(f"  {name(m)} -> {', '.join(inside)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
