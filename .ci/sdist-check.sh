#!/usr/bin/env bash
# The sdist stands alone: build it, install it into a fresh virtualenv, and
# run the tests it ships from a directory outside any source tree, so they
# import the installed custlist (an unpacked sdist has no built extension).
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/tree.sh
VPY=${VPY:-.venv/bin/python}
PYTHON=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

build_sdist "$tmp/dist" >/dev/null
sdist=$(echo "$tmp"/dist/custlist-*.tar.gz)
name=$(basename "$sdist" .tar.gz)
tar -tzf "$sdist" >"$tmp/contents"
for f in LICENSE README.md pyproject.toml tests/conftest.py tests/decode_targets.py \
         tests/data/README.md tests/data/natural-customers.json tests/corpus/generate.py; do
    grep -qx "$name/$f" "$tmp/contents" || { echo "sdist-check: $f missing from $name" >&2; exit 1; }
done
echo "sdist-check: $(grep -c -v '/$' "$tmp/contents") files in $(basename "$sdist")"

"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q "$sdist[test]"
tar -xzf "$sdist" -C "$tmp"
subset=()
for f in $(sed 's/#.*//' .ci/subset); do subset+=("$tmp/$name/$f"); done
mkdir "$tmp/elsewhere"
cd "$tmp/elsewhere"
"$tmp/venv/bin/python" -c 'import custlist, sys; assert sys.argv[1] in custlist._core.__file__, custlist._core.__file__' "$tmp/venv/"
# The files of .ci/subset (they reach every C file): the whole suite runs in
# make test and under the sanitizers; here it is the sdist that is checked.
"$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider "${subset[@]}"
