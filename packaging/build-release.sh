#!/usr/bin/env bash
# Builds herdd as it is shipped (the .deb's binary; bench/run measures this one too) and prints
# the binary's path on stdout (build output goes to stderr).
#
#   packaging/build-release.sh [SOURCE_DIR [SCRATCH_DIR [PRODUCT]]]
#
# SOURCE_DIR defaults to the repository, SCRATCH_DIR to SOURCE_DIR/.build-release-static,
# PRODUCT to herdd (another package's executable built on the Herd library: build-app-deb.sh).
#
# How, and why:
# - --static-swift-stdlib: no Swift runtime libraries to install, and only the code herdd uses
#   is in the binary.
# - The static Swift runtime is C++: libstdc++ and libgcc are linked statically too, so the
#   package depends only on libc6 and libsystemd0. The runtime's link arguments name -lstdc++
#   explicitly; a search directory holding only libstdc++.a (listed first) makes that the
#   static archive, and clang's -static-libgcc replaces libgcc_s with libgcc_eh.
# - lld (shipped with the Swift toolchain) with -z pack-relative-relocs: the ~38,000 relative
#   relocations of Swift metadata shrink from a 900 KiB RELA table, which every process start
#   reads and applies, to a 7 KiB RELR bitmap (glibc >= 2.36). Each worker starts faster and
#   keeps ~1 MiB less resident. (gold, the default, cannot pack them.)
# - -z now: full RELRO (bind now), like Debian's hardening=+bindnow.
# - The hot functions first, together (packaging/hot-functions.txt, made by
#   bench/hot_functions.py from perf profiles): each Swift function in its own section
#   (-function-sections; the static runtime's are already) and lld's --symbol-ordering-file.
#   The ~230 functions a request runs then lie on ~40 pages of .text instead of ~130 spread
#   over 5.7 MiB: each request that starts cold (a 1 MB `Connection: close` response, where the
#   worker sleeps while the client reads) misses fewer pages and lines (docs/static.md). Names
#   the binary lacks (another product, a renamed function) are ignored.
# - -enforce-exclusivity=unchecked: no run-time exclusivity checks (swift_beginAccess on every
#   modify of a class property that spans a call: the connection's buffers, the parser box, the
#   buffer pool). They were 6 % of a worker's user time per keep-alive request (perf, 16 KB
#   static), and the user time fell 10-15 % without them (docs/static.md). The compile-time
#   checks stay, and the debug and ThreadSanitizer builds that run every test keep the run-time
#   ones, so an overlapping access on a tested path still traps in CI; the Swift standard
#   library itself is built this way.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="${1:-$REPO}"
scratch="${2:-$src/.build-release-static}"
product="${3:-herdd}"

cxxdir="$(mktemp -d)"
trap 'rm -rf "$cxxdir"' EXIT
ln -s "$(g++ -print-file-name=libstdc++.a)" "$cxxdir/libstdc++.a"
flags=(-c release --static-swift-stdlib --product "$product" --scratch-path "$scratch"
       -Xswiftc -use-ld=lld
       -Xlinker -z -Xlinker now -Xlinker -z -Xlinker pack-relative-relocs
       -Xlinker "-L$cxxdir" -Xswiftc -Xclang-linker -Xswiftc -static-libgcc
       -Xswiftc -Xfrontend -Xswiftc -function-sections -Xswiftc -enforce-exclusivity=unchecked
       -Xlinker "--symbol-ordering-file=$REPO/packaging/hot-functions.txt" -Xlinker --no-warn-symbol-ordering)
echo "== swift build ${flags[*]}" >&2
(cd "$src" && swift build "${flags[@]}") >&2
bin="$scratch/release/$product"
[ -x "$bin" ] || { echo "build-release.sh: no executable at $bin" >&2; exit 1; }
echo "$bin"
