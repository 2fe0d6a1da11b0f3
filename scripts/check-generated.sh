#!/usr/bin/env bash
# Regenerates the protobuf Go code in a scratch copy and fails if it differs
# from what is committed beside the .proto files.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$root/buf.yaml" "$root/buf.gen.yaml" "$tmp/"
mkdir -p "$tmp/proto"
(cd "$root/proto" && find . -name '*.proto' -exec cp --parents {} "$tmp/proto/" \;)
(cd "$tmp" && buf generate)
diff -ru --exclude='*.proto' <(cd "$root/proto" && find . -name '*.pb.go' | sort) <(cd "$tmp/proto" && find . -name '*.pb.go' | sort)
status=0
while read -r f; do
  if ! cmp -s "$root/proto/$f" "$tmp/proto/$f"; then
    echo "out of date: proto/$f (run 'make generate')"
    status=1
  fi
done < <(cd "$tmp/proto" && find . -name '*.pb.go')
[ $status -eq 0 ] && echo "generated code is up to date"
exit $status
