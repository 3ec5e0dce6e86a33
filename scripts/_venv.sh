# shellcheck shell=bash
# Shared by scripts/run and scripts/test: Debian packages, then the venv.
# Usage: source scripts/_venv.sh; ensure_debs PKG...; ensure_venv EXTRA
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

ensure_debs() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "Installing Debian packages: ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

ensure_venv() {
    local extra="$1" stamp=".venv/.installed-$1"
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    # Reinstall only when pyproject.toml changed since the last install.
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "Installing pickup-kiosk${extra:+[$extra]} into .venv (once, and after pyproject.toml changes)"
        local log=.venv/install.log
        # The build backend's chatter goes to a log, shown only if the install fails.
        if ! { .venv/bin/python -m pip install -q --upgrade pip \
                && .venv/bin/python -m pip install -q -e ".${extra:+[$extra]}"; } >"$log" 2>&1; then
            cat "$log" >&2
            echo "installing into .venv failed (the log above is in $log)" >&2
            return 1
        fi
        touch "$stamp"
    fi
}
