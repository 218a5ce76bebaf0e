#!/usr/bin/env python3
"""Reads one suite's results and prints `SUITE: N passed, M failed`.

    summarize.py SUITE --junit DIR_OR_FILE...        JUnit XML (Surefire, pytest --junitxml)
    summarize.py SUITE --gotest FILE [--allowlist F]  `go test -json` output (franz-go)
    summarize.py SUITE --named NAME=pass|fail...       results a script took itself

Every failure must be listed for this suite in compat/expected-failures.txt (`SUITE TEST  # reason`)
when --expected is given, or the exit status is 1. A listed failure that passed is reported so that
the list is shortened: the allowlist only grows and the expected failures only shrink. A suite
that ran no test at all is a failure, never a pass.
"""
import argparse
import glob
import json
import os
import sys
import xml.etree.ElementTree as ET


def junit_results(paths):
    files = []
    for p in paths:
        files += sorted(glob.glob(os.path.join(p, "TEST-*.xml"))) if os.path.isdir(p) else [p]
    results = {}
    for f in files:
        root = ET.parse(f).getroot()
        for case in root.iter("testcase"):
            name = f"{case.get('classname')}.{case.get('name')}"
            if case.find("skipped") is not None:
                results[name] = "skip"
            elif case.find("failure") is not None or case.find("error") is not None:
                results[name] = "fail"
            else:
                results[name] = "pass"
    return results


def gotest_results(path):
    results = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            test, action = ev.get("Test"), ev.get("Action")
            # Top-level tests only: a subtest's result is part of its parent's.
            if not test or "/" in test:
                continue
            if action in ("pass", "fail", "skip"):
                results[test] = action
            elif action == "run":
                results.setdefault(test, "fail")  # started and never finished: a hang or a panic
    return results


def expected_failures(path, suite):
    out = {}
    if not path or not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)
            body, reason = line[0].split(), (line[1].strip() if len(line) > 1 else "")
            if len(body) == 2 and body[0] == suite:
                out[body[1]] = reason
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("suite")
    ap.add_argument("--junit", nargs="+")
    ap.add_argument("--gotest")
    ap.add_argument("--named", nargs="+", help="NAME=pass|fail for each test a script ran itself")
    ap.add_argument("--expected", help="the expected-failures file (only for runs against Ringlet)")
    ap.add_argument("--allowlist", help="franz-go's allowlist: its `skip NAME reason` lines are excused")
    ap.add_argument("--results-json", help="append this suite's per-test results to this JSON-lines file")
    a = ap.parse_args()
    if a.junit:
        results = junit_results(a.junit)
    elif a.gotest:
        results = gotest_results(a.gotest)
    elif a.named:
        results = dict(n.split("=", 1) for n in a.named)
    else:
        ap.error("one of --junit, --gotest, --named")
    passed = sorted(n for n, r in results.items() if r == "pass")
    failed = sorted(n for n, r in results.items() if r == "fail")
    print(f"{a.suite}: {len(passed)} passed, {len(failed)} failed")
    if a.results_json:
        with open(a.results_json, "a", encoding="utf-8") as f:
            f.write(json.dumps({"suite": a.suite, "results": results}) + "\n")
    expected = expected_failures(a.expected, a.suite) if a.expected else {}
    listed_pass = set()
    if a.allowlist:
        with open(a.allowlist, encoding="utf-8") as f:
            for line in f:
                parts = line.split(None, 2)
                if len(parts) >= 2 and parts[0] == "skip":
                    expected.setdefault(parts[1], parts[2].strip() if len(parts) > 2 else "")
                elif len(parts) >= 2 and parts[0] == "pass":
                    listed_pass.add(parts[1])
    bad = [n for n in failed if n not in expected]
    for n in failed:
        if n in expected:
            print(f"  expected failure: {n} ({expected[n]})")
        else:
            print(f"  FAILED: {n}")
    for n in sorted(expected):
        if results.get(n) == "pass":
            if a.allowlist:
                print(f"  now passes, move it to the allowlist's pass lines: {n}")
            else:
                print(f"  now passes, remove it from compat/expected-failures.txt: {n}")
                bad.append(n)
    if a.allowlist:
        for n in sorted(set(results) - listed_pass - set(expected)):
            print(f"  not in the allowlist (add a pass or skip line): {n}")
    if not results:
        print(f"  no test ran in suite {a.suite}")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
