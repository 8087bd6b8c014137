# Sourced by the .ci scripts that copy this source tree or build its sdist.
# CI's lanes run side by side on one tree: a copy must not read a directory
# another lane is writing in, and no lane may write in the tree while others
# copy it (setuptools' sdist makes its release tree, custlist-X.Y.Z/, in the
# current directory, and tar fails on a directory that changes as it reads).

# This source tree as it is (committed or not), without build products or
# caches, into DIR. In a git checkout the files are named one by one (the
# tracked ones still present, and the untracked ones .gitignore does not
# leave out), so no directory is read as it changes; elsewhere (an unpacked
# sdist) the tree is read whole.
copy_tree() {
    mkdir -p "$1"
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -z --cached --others --exclude-standard --deduplicate \
            | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
            | tar -c --null --no-recursion -T - | tar -C "$1" -x
    else
        tar -c --exclude=./.git --exclude=./.cache --exclude=./.venv --exclude=./build --exclude=./dist \
            --exclude='*.so' --exclude='*.egg-info' --exclude=__pycache__ --exclude='./*/.work' \
            --exclude=./.ci/.asan --exclude=./.pytest_cache . | tar -C "$1" -x
    fi
}

# The sdist of this tree into OUTDIR, built from a private copy (copy_tree)
# so that nothing is written in the tree: VPY names the Python with build.
build_sdist() {
    local out=$1 src py=$VPY rc=0
    case $py in */*) py=$(cd "$(dirname "$py")" && pwd)/$(basename "$py") ;; esac
    src=$(mktemp -d)
    copy_tree "$src"
    mkdir -p "$out"
    out=$(cd "$out" && pwd)
    (cd "$src" && "$py" -m build -q --sdist --no-isolation -o "$out" .) || rc=$?
    rm -rf "$src"
    return $rc
}
