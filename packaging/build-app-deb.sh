#!/usr/bin/env bash
# Builds a Debian package of YOUR executable built on the Herd library (HerdServer.main), with
# herdd's systemd units (socket activation, Type=notify, watchdog, hot upgrade on package
# upgrade), sandbox, config file, man page and maintainer scripts, renamed for your package.
#
#   packaging/build-app-deb.sh --package NAME (--source DIR [--product PRODUCT] | --binary PATH)
#                              [--version 1.0.0-1] [--handler SPEC] [--description TEXT]
#                              [--maintainer 'Name <mail>'] [--copyright FILE] [--out DIR]
#
#   --package NAME      Debian package name; also the command (/usr/bin/NAME), the units
#                       (NAME.service, NAME.socket, NAME-metrics.socket), /etc/NAME/NAME.conf,
#                       /run/NAME and the state directory /var/lib/NAME (StateDirectory=).
#   --source DIR        your Swift package: built as herdd is shipped (build-release.sh: static
#                       Swift runtime, lld, packed relocations, bind now) into DIR/.build-release-static.
#   --product PRODUCT   the executable product in DIR (default: NAME).
#   --binary PATH       an executable you built yourself instead (link the Swift runtime
#                       statically, or the package will not find libswiftCore at run time).
#   --version V         Debian version UPSTREAM-REVISION (default 0.1.0-1).
#   --handler SPEC      the config's `handler = http=SPEC`, e.g. NAME:/var/lib/NAME/app.sqlite
#                       (default: none, so the program's own router or handler serves: a
#                       program started by HerdServer.main(name:...) is its default handler).
#   --description TEXT  one-line summary (Description:).
#   --maintainer M      Maintainer: field and changelog signature.
#   --copyright FILE    debian/copyright of your program (default: a generated stub naming
#                       herdd's MIT license and the statically linked Swift runtime).
#   --out DIR           where the .deb goes (default: <herdd repository>/out).
#   HERDD_NO_LINTIAN=1  skip lintian.
#
# The package depends on what dpkg-shlibdeps finds (libc6, libsystemd0, and whatever your
# program links, e.g. libsqlite3-0) plus libc6 (>= 2.36) for the packed relocations.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG="$REPO/packaging"
# log, deb_install_build_deps, deb_build_and_check (shared with build-deb.sh)
. "$PKG/lib.sh"
die() { echo "build-app-deb.sh: $*" >&2; exit 64; }

name="" source="" product="" binary="" version="0.1.0-1" handler="" description=""
maintainer="herdd user <root@localhost>" copyright="" out="$REPO/out"
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || die "$1 needs a value (see the comment at the top of this script)"
    case "$1" in
        --package) name="$2" ;;
        --source) source="$(cd "$2" && pwd)" ;;
        --product) product="$2" ;;
        --binary) binary="$2" ;;
        --version) version="$2" ;;
        --handler) handler="$2" ;;
        --description) description="$2" ;;
        --maintainer) maintainer="$2" ;;
        --copyright) copyright="$2" ;;
        --out) out="$2" ;;
        *) die "unknown option '$1'" ;;
    esac
    shift 2
done
[ -n "$name" ] || die "--package NAME is required"
printf '%s' "$name" | grep -Eq '^[a-z0-9][a-z0-9+.-]+$' || die "--package '$name' is not a Debian package name ([a-z0-9][a-z0-9+.-]+)"
[ "$name" != herdd ] || die "--package herdd: use packaging/build-deb.sh for herdd itself"
[ -n "$source" ] || [ -n "$binary" ] || die "give --source DIR or --binary PATH"
[ -z "$source" ] || [ -z "$binary" ] || die "give --source DIR or --binary PATH, not both"
printf '%s' "$version" | grep -Eq '^[0-9][A-Za-z0-9.+~]*-[A-Za-z0-9.+~]+$' || die "--version '$version' is not UPSTREAM-REVISION (e.g. 1.0.0-1)"
case "$handler" in *$'\n'*) die "--handler must be one line" ;; esac
upstream="${version%-*}"
description="${description:-$name, an HTTP application served by herdd}"

# (a) build dependencies
deb_install_build_deps
arch="$(dpkg-architecture -qDEB_HOST_ARCH)"

# (b) the binary
if [ -n "$source" ]; then
    bin="$("$PKG/build-release.sh" "$source" "$source/.build-release-static" "${product:-$name}")"
else
    bin="$binary"
fi
[ -x "$bin" ] || die "no executable at $bin"

# (c) a staged source tree: herdd's packaging with herdd renamed to NAME
STAGE="$PKG/build/app-$name-$upstream"
rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/systemd" "$STAGE/packaging" "$STAGE/debian/source" "$out"
upper="$(printf '%s' "$name" | tr 'a-z' 'A-Z')"
rename() { sed -e "s/herdd/$name/g" -e "s/HERDD/$upper/g" "$1"; }
objcopy --only-keep-debug --compress-debug-sections "$bin" "$out/${name}_${version}_${arch}.debug"
strip --strip-all -o "$STAGE/bin/$name" "$bin"
"$STAGE/bin/$name" --version >/dev/null || die "$bin --version failed: is it built on HerdServer.main?"

# Units: the same sandbox; StateDirectory= gives the transient user a writable /var/lib/NAME.
rename "$REPO/systemd/herdd.service" \
    | sed -e "s|^RuntimeDirectory=$name\$|RuntimeDirectory=$name\n# /var/lib/$name: writable state (a database) for the transient user.\nStateDirectory=$name|" \
    > "$STAGE/systemd/$name.service"
rename "$REPO/systemd/herdd.socket" > "$STAGE/systemd/$name.socket"
rename "$REPO/systemd/herdd-metrics.socket" > "$STAGE/systemd/$name-metrics.socket"
rename "$PKG/herdd.conf" > "$STAGE/packaging/$name.conf"
if [ -n "$handler" ]; then
    spec="$(printf '%s' "$handler" | sed 's/[&|\\]/\\&/g')"
    sed -i "s|^handler = http=hello\$|handler = http=$spec|" "$STAGE/packaging/$name.conf"
    grep -qxF "handler = http=$handler" "$STAGE/packaging/$name.conf" || die "could not set the handler in $name.conf"
else
    # herdd's config names hello; a program of its own serves its default handler instead.
    sed -i "s|^handler = http=hello\$|#handler = http=$name:ARGUMENT|" "$STAGE/packaging/$name.conf"
fi
rename "$PKG/herdd.8" > "$STAGE/packaging/$name.8"
for f in install postinst prerm postrm lintian-overrides manpages; do
    rename "$PKG/debian/herdd.$f" > "$STAGE/debian/$name.$f"
done
# Purge removes the state directory too (remove keeps it): everything the package made goes,
# as nginx's purge removes /var/lib/nginx (docs/systemd-stop.md, "Purge"). With DynamicUser=
# the data lives in /var/lib/private/NAME and /var/lib/NAME is systemd's symlink to it.
purge_state="\trm -rf \"/var/lib/$name\" \"/var/lib/private/$name\""
sed -i "s|^\trmdir --ignore-fail-on-non-empty /etc/$name .*|&\n\t# The state directory (StateDirectory=$name; DynamicUser keeps it under /var/lib/private).\n$purge_state|" \
    "$STAGE/debian/$name.postrm"
grep -qF "rm -rf \"/var/lib/$name\" \"/var/lib/private/$name\"" "$STAGE/debian/$name.postrm" \
    || die "could not add the state directory's purge to $name.postrm"
rename "$PKG/debian/rules" > "$STAGE/debian/rules"
chmod +x "$STAGE/debian/rules"
cp "$PKG/debian/source/format" "$STAGE/debian/source/format"
printf 'README\n' > "$STAGE/debian/$name.docs"
cat > "$STAGE/README" <<README
$name: $description.

Built on herdd (https://github.com/ - the Herd library): the command line, the config file
/etc/$name/$name.conf, socket activation ($name.socket on port 8080, $name-metrics.socket on
127.0.0.1:9100), reload (systemctl reload $name), hot upgrade on package upgrade, metrics and
journald logs are herdd's; see $name(8).
README
cat > "$STAGE/debian/control" <<CONTROL
Source: $name
Section: httpd
Priority: optional
Maintainer: $maintainer
Build-Depends: debhelper-compat (= 13)
Standards-Version: 4.6.2
Rules-Requires-Root: no

Package: $name
Architecture: any
Depends: \${shlibs:Depends},
         \${misc:Depends},
         libc6 (>= 2.36),
Description: $description
 $name is served by herdd's prefork server: systemd socket activation,
 one master supervising worker processes, reload and hot upgrade without
 dropped connections, Prometheus metrics and journald logs.
CONTROL
{
    printf '%s (%s) unstable; urgency=medium\n\n' "$name" "$version"
    printf '  * Package built with herdd'"'"'s packaging/build-app-deb.sh.\n\n'
    printf ' -- %s  %s\n' "$maintainer" "$(date -R)"
} > "$STAGE/debian/changelog"
if [ -n "$copyright" ]; then
    cp "$copyright" "$STAGE/debian/copyright"
else
    cat > "$STAGE/debian/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: $name
Comment:
 $name statically links herdd's Herd library (MIT, the Expat license in
 Debian's naming) and the Swift standard library and runtime (Apache-2.0 with
 Runtime Library Exception); see /usr/share/common-licenses/Apache-2.0.
 Replace this file with your program's copyright (--copyright FILE).

Files: *
Copyright: $(date +%Y) the $name authors
License: Expat

License: Expat
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
COPYRIGHT
fi
# dpkg-buildpackage, results into --out, (d) checks
deb_build_and_check "$STAGE" "$name" "$version" "$arch" "$out"
