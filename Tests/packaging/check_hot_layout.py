#!/usr/bin/env python3
"""Checks that a release binary lays out its hot functions together (packaging/build-release.sh,
packaging/hot-functions.txt; docs/static.md, "Hot functions together"):

    Tests/packaging/check_hot_layout.py BINARY [LIST]

Of the functions LIST names (default packaging/hot-functions.txt), at least 80 % must be in
BINARY (a list much older than the code is stale: regenerate it with bench/hot_functions.py),
and those found must lie within 1 MiB of .text (linked in the list's order they take ~230 KiB;
without the ordering they are spread over ~6 MiB). Exit status 1, with what was found, if not."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPAN_LIMIT = 1 << 20
FOUND_MIN = 0.8


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    listing = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "packaging" / "hot-functions.txt"
    names = [l.strip() for l in listing.read_text().splitlines() if l.strip() and not l.startswith("#")]
    nm = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    where = {}
    for line in nm.splitlines():
        f = line.split(None, 3)
        if len(f) == 4 and f[2] in "tTwW":
            where.setdefault(f[3], (int(f[0], 16), int(f[1], 16)))
    found = [where[n] for n in names if n in where]
    if not names or len(found) < FOUND_MIN * len(names):
        print(f"FAIL: {binary} has {len(found)} of the {len(names)} functions of {listing} "
              f"(regenerate it: bench/hot_functions.py)", file=sys.stderr)
        return 1
    span = max(a + s for a, s in found) - min(a for a, _ in found)
    print(f"{len(found)} of {len(names)} hot functions, {sum(s for _, s in found) // 1024} KiB, within {span // 1024} KiB of .text")
    if span > SPAN_LIMIT:
        print(f"FAIL: the hot functions are spread over {span // 1024} KiB (limit {SPAN_LIMIT // 1024}): "
              "not linked in packaging/hot-functions.txt's order", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
