#!/usr/bin/env bash
# Builds the .deb (make deb calls this with VERSION, DEB_ARCH and GO set):
# a stripped PIE binary stamped with VERSION and the commit, man pages and
# shell completions generated from the commands, the copyright file of the
# binary's licences, a changelog, dependencies from dpkg-shlibdeps, and the
# maintainer scripts; then nfpm packs it. The package lands in OUT
# (default build/); its path is the last line printed.
#
# VERSION is `git describe` output without the v. The Debian version keeps
# its order: a tag (0.1.0) is 0.1.0-1, a later commit (0.1.0-14-g06c7d1e)
# 0.1.0+14.g06c7d1e-1, which sorts after it; any other "-" becomes "~", so
# 1.0.0-rc1 sorts before 1.0.0. DEB_REVISION (default 1) is the part after
# the last "-".
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VERSION:?}" "${DEB_ARCH:?}"
GO=${GO:-go}
OUT=${OUT:-build}
DEB_REVISION=${DEB_REVISION:-1}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
# Dates in the package (man pages, changelog, file times) are the commit's,
# so one commit builds the same package.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

DEB_VERSION=$(sed -E -e 's/-([0-9]+)-g([0-9a-f]+)/+\1.g\2/' -e 's/-/~/g' <<<"$VERSION")
[[ $DEB_VERSION =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || { echo "build-deb: VERSION $VERSION makes no Debian version ($DEB_VERSION)" >&2; exit 1; }

mkdir -p "$OUT"
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/rarp-replay-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

# The binary: position independent, full RELRO, fortified cgo, no symbols
# or DWARF; the same version stamps as make build.
pkg=github.com/rarp-replay/rarp-replay/internal/version
CGO_ENABLED=1 CGO_CPPFLAGS="-D_FORTIFY_SOURCE=2" CGO_CFLAGS="-g -O2 -fstack-protector-strong" \
  CGO_LDFLAGS="-Wl,-z,relro,-z,now" \
  "$GO" build -trimpath -buildmode=pie -o "$STAGE/rarp-replay" \
  -ldflags "-s -w -linkmode=external -extldflags '-Wl,-z,relro,-z,now' -X $pkg.version=$VERSION -X $pkg.commit=$COMMIT" \
  ./cmd/rarp-replay
"$STAGE/rarp-replay" version | grep -qxF "rarp-replay $VERSION" || { echo "build-deb: the binary is not stamped $VERSION" >&2; exit 1; }

# Man pages (one per command) from the cobra commands, and completions.
"$GO" run ./scripts/gen-docs -man "$STAGE/man" -version "$VERSION" -date "$(date -u -d "@$SOURCE_DATE_EPOCH" +%F)"
gzip -9n "$STAGE"/man/*.1
for sh in bash zsh fish; do "$STAGE/rarp-replay" completion $sh > "$STAGE/completion.$sh"; done

GO=$GO packaging/gen-copyright.sh "$STAGE/rarp-replay" > "$STAGE/copyright"

{
  echo "rarp-replay ($DEB_VERSION-$DEB_REVISION) unstable; urgency=medium"
  echo
  echo "  * rarp-replay $VERSION, built from commit ${COMMIT:0:12}."
  echo
  echo " -- rarp-replay developers <rarp-replay@example.org>  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$STAGE/changelog.Debian.gz"

# Dependencies: the shared libraries the binary links, with the versions
# their symbols need (libc6, libpcap0.8).
mkdir -p "$STAGE/shlibs/debian"
printf 'Source: rarp-replay\n\nPackage: rarp-replay\nArchitecture: any\n' > "$STAGE/shlibs/debian/control"
DEB_DEPENDS=$(cd "$STAGE/shlibs" && dpkg-shlibdeps -O -e "$STAGE/rarp-replay" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
grep -q 'libc6' <<<"$DEB_DEPENDS" && grep -q 'libpcap0.8' <<<"$DEB_DEPENDS" ||
  { echo "build-deb: dpkg-shlibdeps found no libc6/libpcap0.8 dependency: '$DEB_DEPENDS'" >&2; exit 1; }

STAGE=$STAGE DEB_ARCH=$DEB_ARCH DEB_VERSION=$DEB_VERSION DEB_REVISION=$DEB_REVISION DEB_DEPENDS=$DEB_DEPENDS \
  "$GO" tool -modfile=packaging/tools/go.mod nfpm package --config packaging/nfpm.yaml --packager deb --target "$OUT/" >&2
deb="$OUT/rarp-replay_${DEB_VERSION}-${DEB_REVISION}_${DEB_ARCH}.deb"
[ -f "$deb" ] || { echo "build-deb: nfpm wrote no $deb" >&2; exit 1; }
echo "$deb"
