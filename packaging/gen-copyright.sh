#!/usr/bin/env bash
# Writes the package's machine-readable copyright file (DEP-5) to stdout:
# rarp-replay's own licence (LICENSE, MIT, "Expat" in Debian's names), then
# one stanza per Go module statically linked into BINARY, with the
# copyright lines and licence of that module's licence file in the module
# cache. Apache-2.0 refers to /usr/share/common-licenses; other licences are
# quoted in full. A module whose licence is not recognised stops the build.
# Usage: packaging/gen-copyright.sh BINARY  (GO names the go command)
set -euo pipefail
bin=${1:?usage: gen-copyright.sh BINARY}
GO=${GO:-go}
modcache=$("$GO" env GOMODCACHE)

# indent quotes a licence text as a DEP-5 field body.
indent() { sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /'; }

cat <<'HEAD'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: rarp-replay
Upstream-Contact: rarp-replay developers <rarp-replay@example.org>
Source: https://github.com/rarp-replay/rarp-replay

Files: *
Copyright: 2026 rarp-replay developers
License: Expat
HEAD
sed -n '/^Permission is hereby granted/,$p' LICENSE | indent

stanzas=$(mktemp)
trap 'rm -f "$stanzas"' EXIT
goroot=$("$GO" env GOROOT)
{ echo std "$("$GO" env GOVERSION)"; "$GO" version -m "$bin" | awk '$1 == "dep" || $1 == "=>" { print $2, $3 }' | sort -u; } |
while read -r mod ver; do
  if [ "$mod" = std ]; then
    # The Go runtime and standard library.
    dir=$goroot mod=go.dev/std what="The Go runtime and standard library ($ver)"
  else
    what="Go module $mod $ver"
    # The module cache spells an upper-case letter as ! and its lower case.
    dir="$modcache/$(sed 's/[A-Z]/!\L&/g' <<<"$mod")@$ver"
  fi
  lic=$(ls "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* 2>/dev/null | head -n 1 || true)
  [ -n "$lic" ] || { echo "gen-copyright: no licence file for $mod@$ver in $dir" >&2; exit 1; }
  text=$(cat "$lic")
  case "$text" in
    *"Apache License"*"Version 2.0"*) name=Apache-2.0 ;;
    *"Permission is hereby granted, free of charge"*) name=Expat ;;
    *"Redistribution and use in source and binary forms"*"Neither the name"*) name=BSD-3-clause ;;
    *"Redistribution and use in source and binary forms"*) name=BSD-2-clause ;;
    *"Mozilla Public License"*"2.0"*) name=MPL-2.0 ;;
    *) echo "gen-copyright: unrecognised licence $lic" >&2; exit 1 ;;
  esac
  holders=$(grep -iE '^[[:space:]]*Copyright (\(c\)|©|[0-9])' "$lic" |
    sed -e 's/^[[:space:]]*Copyright[[:space:]]*\(([cC])\|©\)\?[[:space:]]*//' -e 's/[[:space:]]*$//' | sort -u || true)
  [ -n "$holders" ] || holders="the $mod authors"
  echo
  echo "Files: $mod/*"
  echo "Copyright: $(head -n 1 <<<"$holders")"
  tail -n +2 <<<"$holders" | sed 's/^/ /'
  echo "Comment: $what, statically linked into /usr/bin/rarp-replay."
  echo "License: $name"
  case $name in
    # Debian ships these texts: refer to them, do not quote them.
    Apache-2.0|MPL-2.0) ;;
    *) indent <<<"$text" ;;
  esac
done >"$stanzas"
cat "$stanzas"
# The licences referred to by name get a stand-alone paragraph.
for name in Apache-2.0 MPL-2.0; do
  grep -qx "License: $name" "$stanzas" || continue
  printf '\nLicense: %s\n On Debian systems, the complete text of the %s licence can be found\n in "/usr/share/common-licenses/%s".\n' "$name" "$name" "$name"
done
