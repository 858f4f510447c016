#!/usr/bin/env python3
"""Mutation check for herdd: applies each one-line mutation of mutations.txt in a scratch copy of
the tree (never in the working tree), builds it, runs the test that must catch it, and reports
caught/total. The tests used must first pass on the unmutated copy. Slow (one incremental build
per mutant), so not part of test.sh's default run;
test.sh runs `run.sh --check`, which only verifies that every mutation still applies.

    Tests/mutants/run.sh [--check] [--only ID[,ID...]] [--scratch DIR]

The scratch copy (default /tmp/herdd-mutants-$UID/tree) keeps its .build between runs."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KEYS = ("id", "file", "find", "replace", "test")


def parse(path: Path) -> list[dict[str, str]]:
    out, cur = [], {}
    for n, raw in enumerate(path.read_text().splitlines() + [""], 1):
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if cur:
                missing = [k for k in KEYS if k not in cur]
                if missing:
                    raise SystemExit(f"{path}:{n}: mutation {cur.get('id', '?')} lacks {', '.join(missing)}")
                out.append(cur)
                cur = {}
            continue
        key, sep, value = raw.partition(": ")
        if not sep or key not in KEYS or key in cur:
            raise SystemExit(f"{path}:{n}: expected one of {'/'.join(KEYS)} once per block: {raw!r}")
        cur[key] = value
    ids = [m["id"] for m in out]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"{path}: duplicate ids")
    for m in out:
        kind = m["test"].split()[0]
        if kind not in ("unit", "it", "check"):
            raise SystemExit(f"{path}: {m['id']}: test must start with unit, it or check: {m['test']!r}")
    return out


def check(muts, root: Path) -> list[str]:
    """Every `find` occurs exactly once in its file (else the list has rotted)."""
    errors = []
    for m in muts:
        f = root / m["file"]
        if not f.is_file():
            errors.append(f"{m['id']}: no file {m['file']}")
            continue
        n = f.read_text().count(m["find"])
        if n != 1:
            errors.append(f"{m['id']}: `{m['find']}` occurs {n} times in {m['file']} (expected 1)")
    return errors


def sh(cmd, cwd, log, timeout, env=None) -> int:
    with open(log, "ab") as f:
        f.write(f"\n$ {cmd if isinstance(cmd, str) else shlex.join(cmd)}\n".encode())
        f.flush()
        try:
            return subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                                  shell=isinstance(cmd, str), env=env).returncode
        except subprocess.TimeoutExpired:
            f.write(b"\n(timed out)\n")
            return 124


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="only check that every mutation applies")
    ap.add_argument("--only", default="", help="comma-separated ids")
    ap.add_argument("--scratch", default=f"/tmp/herdd-mutants-{os.getuid()}")
    args = ap.parse_args()

    muts = parse(HERE / "mutations.txt")
    errors = check(muts, REPO)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)
    if args.check:
        print(f"mutations.txt: {len(muts)} mutations, each applies once")
        return
    if args.only:
        want = set(args.only.split(","))
        muts = [m for m in muts if m["id"] in want]

    scratch = Path(args.scratch)
    tree = scratch / "tree"
    tree.mkdir(parents=True, exist_ok=True)
    log = scratch / "run.log"
    log.write_text("")
    # A fresh copy of the sources (uncommitted edits included); .build* stays for incremental builds.
    for entry in tree.iterdir():
        if not entry.name.startswith(".build"):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    shutil.copytree(REPO, tree, symlinks=True, dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names if n.startswith((".build", ".git", "__pycache__"))])
    print(f"scratch tree {tree}, log {log}", flush=True)
    if sh(["swift", "build", "--build-tests"], tree, log, 1800) != 0:
        sys.exit(f"the unmutated tree does not build: see {log}")
    env = dict(os.environ)
    bin_path = subprocess.run(["swift", "build", "--show-bin-path"], cwd=tree, capture_output=True,
                              text=True, check=True).stdout.strip()
    env["HERDD_BIN"] = f"{bin_path}/herdd"

    def test_cmd(m):
        kind, _, rest = m["test"].partition(" ")
        if kind == "unit":
            return ["swift", "test", "--skip-build", "--filter", rest]
        if kind == "check":
            return shlex.split(rest)
        return [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *shlex.split(rest)]

    # Baseline: every test used must pass on the unmutated tree, or "caught" would mean nothing.
    # One retry: some integration tests measure the machine (the herd meter's shared-mode empty
    # wakeups fall toward 0 under heavy CPU contention from other processes).
    for t in dict.fromkeys(m["test"] for m in muts):
        if sh(test_cmd({"test": t}), tree, log, 900, env=env) != 0:
            print(f"baseline: `{t}` failed on the unmutated tree; retrying once", flush=True)
            if sh(test_cmd({"test": t}), tree, log, 900, env=env) != 0:
                sys.exit(f"baseline: `{t}` fails on the unmutated tree: see {log}")
    print(f"baseline: the {len(set(m['test'] for m in muts))} tests used pass on the unmutated tree", flush=True)

    results = []
    for m in muts:
        t0 = time.monotonic()
        f = tree / m["file"]
        original = f.read_text()
        f.write_text(original.replace(m["find"], m["replace"], 1))
        try:
            if sh(["swift", "build", "--build-tests"], tree, log, 1800) != 0:
                verdict = "build-failed"
            else:
                rc = sh(test_cmd(m), tree, log, 900, env=env)
                verdict = "caught" if rc != 0 else "SURVIVED"
        finally:
            f.write_text(original)
        results.append((m["id"], verdict))
        print(f"{verdict:12} {m['id']}  ({m['test']}, {time.monotonic() - t0:.0f} s)", flush=True)

    caught = sum(1 for _, v in results if v == "caught")
    valid = sum(1 for _, v in results if v != "build-failed")
    print(f"caught {caught}/{valid} mutants" + (f" ({len(results) - valid} did not build)" if valid != len(results) else ""))
    (scratch / "results.txt").write_text("\n".join(f"{v} {i}" for i, v in results) + f"\ncaught {caught}/{valid}\n")
    sys.exit(0 if caught == valid else 1)


if __name__ == "__main__":
    main()
