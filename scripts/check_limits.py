#!/usr/bin/env python3
"""Checks the code-shape limits of docs/architecture.md: no Rust file over 800 lines, no function
over 150 lines (tables are data, not functions), no import cycle between a crate's files, and no
crate but the engine reaching into a partition's log (`log_for_tests` is for the engine's tests).
Prints every breach; exits 1 on a breach not listed in scripts/limits-known.txt, or on a listed
one that is gone (remove its line: the list only shrinks). `--report` prints the largest items."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["engine", "server", "client", "loadgen", "tuning", "benches", "cli"]
MAX_FILE, MAX_FN = 800, 150
FN = re.compile(r'^(\s*)(pub(\([^)]*\))?\s+)?(async\s+)?(unsafe\s+)?(const\s+)?fn\s+(\w+)')


def rust_files(crate):
    for d, _, files in os.walk(os.path.join(ROOT, crate)):
        if "/target" in d:
            continue
        for f in files:
            if f.endswith(".rs"):
                yield os.path.join(d, f)


def functions(path):
    lines = open(path).read().split("\n")
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        for j in range(i + 1, len(lines)):
            if lines[j] == indent + "}":
                yield m.group(7), i + 1, j - i + 1
                break


def module_of(crate, path):
    rel = os.path.relpath(path, os.path.join(ROOT, crate, "src"))
    if rel.startswith(".."):
        return None
    parts = rel[:-3].split("/")
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return "::".join(parts)


def cycles(crate):
    """Import cycles between the crate's top-level modules (file or directory)."""
    edges = {}
    for path in rust_files(crate):
        mod = module_of(crate, path)
        if mod is None or "/tests/" in path or path.endswith("/tests.rs"):
            continue
        top = mod.split("::")[0] if mod else ""
        if not top:
            continue
        src = open(path).read()
        src = src.split("#[cfg(test)]")[0]
        src = "\n".join(l for l in src.split("\n") if not l.lstrip().startswith("//"))
        for used in re.findall(r'\bcrate::(\w+)', src):
            if used != top:
                edges.setdefault(top, set()).add(used)
    found = []
    def visit(node, stack):
        for nxt in sorted(edges.get(node, ())):
            if nxt in stack:
                cyc = stack[stack.index(nxt):] + [nxt]
                key = frozenset(cyc)
                if key not in seen:
                    seen.add(key)
                    found.append(cyc)
            elif len(stack) < 8:
                visit(nxt, stack + [nxt])
    seen = set()
    for n in sorted(edges):
        visit(n, [n])
    return found


def engine_encapsulation():
    """The engine owns the logs: other crates' sources ask the Partition and the log manager."""
    found = []
    for crate in CRATES:
        if crate in ("engine", "benches") or not os.path.isdir(os.path.join(ROOT, crate, "src")):
            continue
        for path in rust_files(os.path.join(crate, "src")):
            for i, line in enumerate(open(path), 1):
                if "log_for_tests" in line:
                    found.append(f"{os.path.relpath(path, ROOT)}:{i}: reaches into a partition's log")
    return found


def main():
    report = "--report" in sys.argv
    breaches = []
    sizes, fns = [], []
    for crate in CRATES:
        if not os.path.isdir(os.path.join(ROOT, crate)):
            continue
        for path in rust_files(crate):
            rel = os.path.relpath(path, ROOT)
            n = sum(1 for _ in open(path))
            sizes.append((n, rel))
            if n > MAX_FILE:
                breaches.append(f"{rel}: {n} lines (limit {MAX_FILE})")
            for name, line, length in functions(path):
                fns.append((length, f"{rel}:{line} {name}"))
                if length > MAX_FN:
                    breaches.append(f"{rel}:{line}: fn {name} is {length} lines (limit {MAX_FN})")
        for cyc in cycles(crate):
            breaches.append(f"{crate}: import cycle {' -> '.join(cyc)}")
    breaches += engine_encapsulation()
    if report:
        print("largest files:", *[f"  {n} {p}" for n, p in sorted(sizes)[-8:]], sep="\n")
        print("longest functions:", *[f"  {n} {p}" for n, p in sorted(fns)[-8:]], sep="\n")
    known_path = os.path.join(ROOT, "scripts", "limits-known.txt")
    known = set()
    if os.path.exists(known_path):
        known = {l.split("#")[0].strip() for l in open(known_path)} - {""}
    new = [b for b in breaches if b not in known]
    gone = sorted(known - set(breaches))
    for b in breaches:
        print(("known: " if b in known else "NEW: ") + b)
    for g in gone:
        print(f"FIXED (remove it from scripts/limits-known.txt): {g}")
    print(f"{len(breaches)} breaches of the code-shape limits ({len(new)} new, {len(gone)} listed but gone)")
    return 1 if new or gone else 0


if __name__ == "__main__":
    sys.exit(main())
