# Sourced by the .ci scripts: the table of .ci/pythons.
#   python_versions              every version, oldest first
#   python_field VERSION FIELD   its build, smoke or suite column
#   pyenv_prefix X.Y.Z           where pyenv installed that CPython
_pythons=$(dirname "${BASH_SOURCE[0]}")/pythons
python_versions() { awk '!/^#/ && NF { print $1 }' "$_pythons"; }
python_field() {
    awk -v v="$1" -v f="$2" '
        BEGIN { col["build"] = 2; col["smoke"] = 3; col["suite"] = 4 }
        !/^#/ && $1 == v { print $col[f]; found = 1 }
        END { exit !found }' "$_pythons" \
        || { echo "pythons: no CPython $1 in $_pythons" >&2; return 1; }
}
pyenv_prefix() {
    local p=${PYENV_ROOT:-$HOME/.pyenv}/versions/$1
    [ -x "$p/bin/python${1%.*}" ] || { echo "pythons: no pyenv CPython $1 at $p" >&2; return 1; }
    echo "$p"
}
