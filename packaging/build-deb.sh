#!/usr/bin/env bash
# Builds the herdd Debian package into <repo>/out/.
#
#   packaging/build-deb.sh                        # version from packaging/debian/changelog
#   HERDD_DEB_VERSION=0.1.0-2 packaging/build-deb.sh   # another version (e.g. upgrade tests)
#   packaging/build-deb.sh --package NAME --source DIR  # your own server (build-app-deb.sh)
#
# Environment:
#   HERDD_DEB_VERSION  Debian version to build (a changelog entry is added in the staged copy).
#   HERDD_BUILD_TAG    16 characters [0-9a-z] patched into the binary's build tag, so
#                      `herdd --version` says 0.1.0+TAG (tells two test builds apart).
#   HERDD_BIN          use this already built herdd instead of running swift build.
#   HERDD_GIT_REF      build the Sources of this commit (git archive into packaging/build/src,
#                      scratch path packaging/build/.build-release-static) instead of the
#                      work tree: a consistent snapshot while others edit Sources/.
#   HERDD_NO_LINTIAN=1 skip lintian.
#
# Steps: (a) install the build dependencies with apt when missing, (b) build-release.sh (static
# Swift runtime, lld) into <repo>/.build-release-static, strip the binary (debug info kept
# in out/), (c) stage a source tree in packaging/build/ and run dpkg-buildpackage -b there
# (debhelper: dh_installsystemd writes the maintainer scripts, dh_shlibdeps the Depends),
# (d) check the result: dpkg-deb -I, Depends, lintian. (a), the dpkg-buildpackage run and (d)
# are shared with build-app-deb.sh: packaging/lib.sh.
set -euo pipefail

# With options (--package NAME ...): a package of your own executable built on the Herd
# library, with these units, sandbox and config renamed (see build-app-deb.sh).
if [ $# -gt 0 ]; then exec "$(dirname "${BASH_SOURCE[0]}")/build-app-deb.sh" "$@"; fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG="$REPO/packaging"
OUT="$REPO/out"
SCRATCH="$REPO/.build-release-static"

# log, deb_install_build_deps, deb_build_and_check (shared with build-app-deb.sh)
. "$PKG/lib.sh"

# (a) build dependencies
deb_install_build_deps

# Versions
changelog_version="$(dpkg-parsechangelog -l "$PKG/debian/changelog" -S Version)"
version="${HERDD_DEB_VERSION:-$changelog_version}"
if ! printf '%s' "$version" | grep -Eq '^[0-9][A-Za-z0-9.+~]*-[A-Za-z0-9.+~]+$'; then
    echo "build-deb.sh: HERDD_DEB_VERSION '$version' is not UPSTREAM-REVISION (e.g. 0.1.0-2)" >&2
    exit 64
fi
upstream="${version%-*}"
arch="$(dpkg-architecture -qDEB_HOST_ARCH)"

# (b) binary
src="$REPO"
if [ -n "${HERDD_BIN:-}" ]; then
    bin="$HERDD_BIN"
    log "using prebuilt $bin"
else
    # How the shipped binary is built (static runtime, lld with packed relocations, bind now):
    # see build-release.sh.
    if [ -n "${HERDD_GIT_REF:-}" ]; then
        src="$PKG/build/src"
        SCRATCH="$PKG/build/.build-release-static"
        log "sources of $HERDD_GIT_REF ($(git -C "$REPO" rev-parse --short "$HERDD_GIT_REF")) in $src"
        rm -rf "$src"; mkdir -p "$src"
        git -C "$REPO" archive "$HERDD_GIT_REF" | tar -x -C "$src"
        [ -f "$REPO/Package.resolved" ] && [ ! -f "$src/Package.resolved" ] && cp "$REPO/Package.resolved" "$src/"
    fi
    bin="$("$PKG/build-release.sh" "$src" "$SCRATCH")"
fi
[ -x "$bin" ] || { echo "build-deb.sh: no executable at $bin" >&2; exit 1; }

STAGE="$PKG/build/herdd-$upstream"
rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/systemd" "$STAGE/packaging" "$OUT"
cp "$bin" "$STAGE/bin/herdd.unstripped"
if [ -n "${HERDD_BUILD_TAG:-}" ]; then
    printf '%s' "$HERDD_BUILD_TAG" | grep -Eq '^[0-9a-z]{16}$' || {
        echo "build-deb.sh: HERDD_BUILD_TAG must be 16 characters [0-9a-z]" >&2; exit 64; }
    python3 - "$STAGE/bin/herdd.unstripped" "$HERDD_BUILD_TAG" <<'PY'
import sys
path, tag = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
old = b"herdd-build-tag:" + b"0" * 16
if data.count(old) != 1:
    sys.exit("build tag literal found %d times in %s" % (data.count(old), path))
open(path, "wb").write(data.replace(old, b"herdd-build-tag:" + tag.encode()))
PY
fi
objcopy --only-keep-debug --compress-debug-sections "$STAGE/bin/herdd.unstripped" "$OUT/herdd_${version}_${arch}.debug"
strip --strip-all -o "$STAGE/bin/herdd" "$STAGE/bin/herdd.unstripped"
objcopy --add-gnu-debuglink="$OUT/herdd_${version}_${arch}.debug" "$STAGE/bin/herdd" 2>/dev/null || true
rm "$STAGE/bin/herdd.unstripped"
log "stripped binary: $(stat -c %s "$STAGE/bin/herdd") bytes, $("$STAGE/bin/herdd" --version)"

# (c) staged source tree
cp -r "$PKG/debian" "$STAGE/debian"
cp "$REPO/systemd/herdd.service" "$REPO/systemd/herdd.socket" "$REPO/systemd/herdd-metrics.socket" "$STAGE/systemd/"
cp "$PKG/herdd.conf" "$PKG/herdd.8" "$STAGE/packaging/"
cp "$src/README.md" "$STAGE/README.md"
if [ "$version" != "$changelog_version" ]; then
    log "changelog entry for $version"
    {
        printf 'herdd (%s) unstable; urgency=medium\n\n' "$version"
        printf '  * Build %s (HERDD_DEB_VERSION).\n\n' "$version"
        printf ' -- herdd developers <herdd@example.org>  %s\n\n' "$(date -R)"
        cat "$PKG/debian/changelog"
    } > "$STAGE/debian/changelog"
fi

# dpkg-buildpackage, results into out/, (d) checks
deb_build_and_check "$STAGE" herdd "$version" "$arch" "$OUT"
