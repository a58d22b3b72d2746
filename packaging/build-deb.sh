#!/usr/bin/env bash
# Builds the .deb into build/ from bin/rarp-replay (make deb calls this with
# VERSION, DEB_ARCH and GO set).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VERSION:?}" "${DEB_ARCH:?}"
GO=${GO:-go}
mkdir -p build
bin/rarp-replay version | grep -qxF "rarp-replay $VERSION" || { echo "bin/rarp-replay is not stamped $VERSION" >&2; exit 1; }
{ bin/rarp-replay version; echo; bin/rarp-replay --help; } > build/reference.txt
for c in listen send-rarp replay; do echo; echo "== rarp-replay $c"; bin/rarp-replay $c --help; done >> build/reference.txt
bin/rarp-replay completion bash > build/completion.bash
bin/rarp-replay completion zsh > build/completion.zsh
bin/rarp-replay completion fish > build/completion.fish
VERSION=$VERSION DEB_ARCH=$DEB_ARCH "$GO" tool -modfile=packaging/tools/go.mod nfpm \
  package --config packaging/nfpm.yaml --packager deb --target build/
