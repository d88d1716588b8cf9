# Sourced, not run: `python_tools VENV REQUIREMENT…` makes a venv at VENV holding exactly the
# pinned REQUIREMENTs from PyPI (installed once; after that everything runs offline), and
# installs Debian's python3-venv first when the machine lacks it. Used by the scripts whose
# tools come from PyPI (deploy/k8s/check.sh, deploy/local/api-contract.sh). Needs `die`.
python_tools() {
    local venv="$1"
    shift
    local requirements="$*"
    if [ ! -x "$venv/bin/python" ]; then
        if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
            echo "installing python3-venv (apt-get)" >&2
            local sudo=""
            [ "$(id -u)" = 0 ] || sudo="sudo"
            $sudo apt-get update -qq || true
            $sudo apt-get install -y -qq python3-venv >/dev/null || die "cannot install python3-venv"
        fi
        rm -rf "$venv"
        python3 -m venv "$venv" || die "python3 -m venv $venv failed"
    fi
    if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$requirements" ]; then
        echo "installing into $venv: $requirements" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" \
            || die "pip install of $requirements failed (PyPI is needed once)"
        echo "$requirements" > "$venv/.requirements"
    fi
}
