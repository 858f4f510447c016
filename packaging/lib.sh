# Shared by build-deb.sh (herdd) and build-app-deb.sh (your own server): sourced, not run.
# Both stage a source tree under packaging/build/ and then build and check it the same way.

log() { printf '== %s\n' "$*"; }

# Installs the Debian packages the .deb build needs when they are missing (apt-get, with sudo
# when not root).
deb_install_build_deps() {
    local need=() p SUDO=""
    for p in debhelper dpkg-dev lintian libsystemd-dev pkg-config fakeroot binutils file g++; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
    done
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        [ "$(id -u)" -eq 0 ] || SUDO=sudo
        $SUDO apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
    fi
}

# deb_build_and_check STAGE PACKAGE VERSION ARCH OUT
#
# Runs dpkg-buildpackage -b in the staged tree STAGE (its output goes to stderr), moves the
# .deb, .buildinfo and .changes it leaves next to STAGE into OUT, then checks the package:
# dpkg-deb -I and -c, the staged binary's NEEDED libraries (STAGE/bin/PACKAGE), Depends, and
# lintian (HERDD_NO_LINTIAN=1 skips it; its findings are shown, not fatal here: the packaging
# tests fail on lintian errors). Exits non-zero when no .deb was produced.
deb_build_and_check() {
    local stage="$1" name="$2" version="$3" arch="$4" out="$5" f
    local deb="$out/${name}_${version}_${arch}.deb"
    log "dpkg-buildpackage -b -us -uc ($name $version, $arch)"
    (cd "$stage" && dpkg-buildpackage -b -us -uc) >&2
    # dpkg-buildpackage writes its results into the parent directory of the tree it built.
    for f in "$(dirname "$stage")/${name}_${version}_${arch}".{deb,buildinfo,changes}; do
        if [ -e "$f" ]; then mv -f "$f" "$out/"; fi
    done
    [ -f "$deb" ] || { echo "${0##*/}: $deb was not produced" >&2; exit 1; }

    log "package"
    dpkg-deb -I "$deb" | sed -n '/Package:/,$p'
    dpkg-deb -c "$deb"
    log "NEEDED: $(readelf -d "$stage/bin/$name" | awk '/NEEDED/ {gsub(/[][]/, "", $5); printf "%s ", $5}')"
    log "Depends: $(dpkg-deb -f "$deb" Depends)"
    if [ "${HERDD_NO_LINTIAN:-0}" != 1 ]; then
        log "lintian"
        lintian --info --display-info --fail-on error "$deb" && log "lintian: no errors"
    fi
    log "built $deb"
}
