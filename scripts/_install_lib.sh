# shellcheck shell=bash
# Shared by scripts/install.sh and scripts/uninstall.sh. Callers set
# DESTDIR (staging root, may be empty) and DRY_RUN (0 or 1) first.

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }

quoted() {
    local out='' arg
    for arg in "$@"; do out+="$(printf '%q' "$arg") "; done
    printf '%s' "${out% }"
}

staging() { [[ -n $DESTDIR || $DRY_RUN == 1 ]]; }

# A change to the system itself: printed instead of run when staging.
sys_run() {
    if staging; then
        printf 'would run: %s\n' "$(quoted "$@")"
    else
        "$@"
    fi
}

# A change to files under $DESTDIR: printed instead of run on --dry-run only.
fs_run() {
    if [[ $DRY_RUN == 1 ]]; then
        printf 'would run: %s\n' "$(quoted "$@")"
    else
        "$@"
    fi
}
