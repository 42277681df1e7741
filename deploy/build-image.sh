#!/usr/bin/env bash
# Build the capsock OCI image with buildah (or podman): wheels by `pip
# wheel`, guests by guest/build.py, then deploy/Containerfile on a context
# holding just those. Usage:
#
#   deploy/build-image.sh [TAG] [-- extra buildah build arguments]
#
# Environment: PYTHON (default: python3, with capsock's build extra for the
# guests), BUILDER (buildah or podman; default: whichever is installed),
# APPS (default: echo http kv syslog udpecho).
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-capsock:0.1.0}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
python=${PYTHON:-python3}
apps=${APPS:-echo http kv syslog udpecho}
builder=${BUILDER:-$(command -v buildah || command -v podman || true)}
if [ -z "$builder" ]; then
    echo "build-image: neither buildah nor podman found (apt-get install -y buildah)" >&2
    exit 2
fi
context=build/image
rm -rf "$context"
mkdir -p "$context/wheels" "$context/apps"
"$python" -m pip wheel --quiet -w "$context/wheels" '.[metrics]'
# shellcheck disable=SC2086 # one word per app
PYTHONPATH=host "$python" guest/build.py $apps
for app in $apps; do
    cp "build/$app.wasm" "$context/apps/"
done
"$builder" build --build-arg APPS="$apps" -f deploy/Containerfile -t "$tag" "$@" "$context"
