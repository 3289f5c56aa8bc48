#!/usr/bin/env python3
"""The import graph of bespin-core's modules, and the circles in it.

Reads every `use crate::…` / `use super::…` statement and every inline `crate::…` path of
bespin-core/src (test modules excluded), resolves re-exports (`pub use` in lib.rs and mod.rs
files) to the module that defines the name, and prints the strongly connected components of
more than one module. With `--through store`, the modules under store/ count as one node and
the script exits 1 when that node is part of a circle.

    python3 scripts/import-graph.py [--through store] [--edges store] [--src DIR]
"""

import argparse
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "bespin-core" / "src"


def module_of(path: pathlib.Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return "::".join(parts) or "crate"


def strip(text: str) -> str:
    # Test modules last in a file, then comments and string literals.
    test_mod = r"#\[cfg\([^\]]*\btest\b[^\]]*\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([a-z]+\))?\s+)?mod \w+\s*\{"
    text = re.split(test_mod, text)[0]
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return text


def expand(tree: str, base: list[str]) -> list[list[str]]:
    """Paths named by a use tree such as `a::{b, c::{d, e}}`."""
    tree = tree.strip()
    if not tree:
        return []
    depth, items, cur = 0, [], ""
    if "{" in tree:
        head, rest = tree.split("{", 1)
        body = rest[: rest.rfind("}")]
        prefix = base + [p for p in head.split("::") if p]
        for ch in body:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                items.append(cur)
                cur = ""
            else:
                cur += ch
        items.append(cur)
        out = []
        for it in items:
            out.extend(expand(it, prefix))
        return out
    path = tree.split(" as ")[0].strip()
    parts = [p for p in path.split("::") if p]
    if parts == ["self"]:
        return [base]
    return [base + parts]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--through", help="collapse this module's tree into one node and check it")
    ap.add_argument("--edges", help="print the edges leaving this node")
    ap.add_argument("--src", help="another bespin-core/src to read (e.g. an export of main)")
    args = ap.parse_args()
    global SRC
    if args.src:
        SRC = pathlib.Path(args.src).resolve()

    files = {module_of(p): strip(p.read_text()) for p in SRC.rglob("*.rs")}
    # Modules declared for tests only (`#[cfg(test)] mod testutil;`) are left out.
    for m, text in list(files.items()):
        here = [] if m == "crate" else m.split("::")
        for name in re.findall(r"#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?mod (\w+);", text):
            files.pop("::".join(here + [name]), None)
    modules = set(files)

    def resolve_mod(parts: list[str]) -> str:
        for n in range(len(parts), -1, -1):
            m = "::".join(parts[:n]) or "crate"
            if m in modules:
                return m
        return "crate"

    # Re-exports: (module, name) -> full path of what it names.
    reexports: dict[tuple[str, str], list[str]] = {}
    uses: dict[str, list[list[str]]] = {}
    for m, text in files.items():
        here = [] if m == "crate" else m.split("::")
        paths = []
        for pub, tree in re.findall(r"(pub(?:\([a-z]+\))?\s+)?use\s+([^;]+);", text):
            tree = " ".join(tree.split())
            if tree.startswith("crate::"):
                got = expand(tree[len("crate::"):], [])
            elif tree.startswith("super::"):
                up = here[:-1]
                rest = tree[len("super::"):]
                while rest.startswith("super::"):
                    up, rest = up[:-1], rest[len("super::"):]
                got = expand(rest, up)
            elif tree.startswith("self::"):
                got = expand(tree[len("self::"):], here)
            elif re.match(r"[a-z_]+::", tree) and tree.split("::")[0] in {
                x.split("::")[-1] for x in modules if x.startswith(m + "::") or m == "crate"
            }:
                got = expand(tree, here)
            else:
                continue
            paths.extend(got)
            if pub:
                for p in got:
                    if p:
                        reexports[(m, p[-1])] = p
        for p in re.findall(r"(?<![A-Za-z0-9_:])crate::((?:[A-Za-z_][A-Za-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*)", text):
            paths.append(p.split("::"))
        uses[m] = paths

    def target(parts: list[str], seen=0) -> str:
        m = resolve_mod(parts)
        depth = 0 if m == "crate" else len(m.split("::"))
        if len(parts) > depth and seen < 10:
            key = (m, parts[depth])
            if key in reexports and reexports[key] != parts:
                return target(reexports[key] + parts[depth + 1:], seen + 1)
        return m

    def node(m: str) -> str:
        if args.through and (m == args.through or m.startswith(args.through + "::")):
            return args.through
        return m

    edges: dict[str, set[str]] = {node(m): set() for m in modules}
    for m, paths in uses.items():
        for p in paths:
            t = node(target(p))
            if t != node(m):
                edges[node(m)].add(t)

    if args.edges:
        for t in sorted(edges.get(args.edges, ())):
            print(f"{args.edges} -> {t}")
        return 0

    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
            sccs.append(comp)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    circles = [sorted(c) for c in sccs if len(c) > 1]
    print(f"{len(edges)} modules, {sum(len(e) for e in edges.values())} imports")
    for c in circles:
        print(f"circle of {len(c)}: {' '.join(c)}")
    if args.through:
        bad = [c for c in circles if args.through in c]
        if bad:
            print(f"{args.through}/ is in a circle of {len(bad[0])} modules")
            return 1
        print(f"{args.through}/ is in no circle; it imports: {' '.join(sorted(edges[args.through])) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
