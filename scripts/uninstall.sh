#!/usr/bin/env bash
# Remove pickup-kiosk: stop and disable it, remove its units and the program.
#
#   sudo scripts/uninstall.sh             # keeps /etc/pickup-kiosk and /var/lib/pickup-kiosk
#   sudo scripts/uninstall.sh --purge     # also the config, the store and the user
#   scripts/uninstall.sh --dry-run        # print what it would do
#   DESTDIR=/tmp/root scripts/uninstall.sh
#
# Without --purge the configuration (site id, keys, broker password) and the
# store (orders, the audit trail) stay, so a later install.sh picks up where
# this one left off. Back the store up before --purge (docs/install.md).
# DESTDIR and UNITDIR work as for install.sh.

set -euo pipefail

readonly SERVICE_USER=pickup-kiosk
readonly PREFIX=/opt/pickup-kiosk
readonly CONF_DIR=/etc/pickup-kiosk
readonly STATE_DIR=/var/lib/pickup-kiosk
readonly CACHE_DIR=/var/cache/pickup-kiosk
readonly TARGET=pickup-kiosk.target
readonly UNITS=(pickup-kiosk.target pickup-kiosk-door.service pickup-kiosk-sync.service
    pickup-kiosk-rearm.service pickup-kiosk-rearm.timer pickup-hub.service)

DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}
UNITDIR=${UNITDIR:-/etc/systemd/system}
DRY_RUN=0
PURGE=0

while (($#)); do
    case $1 in
        --dry-run) DRY_RUN=1 ;;
        --purge) PURGE=1 ;;
        -h | --help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) printf 'uninstall.sh: unknown option %s (try --help)\n' "$1" >&2; exit 2 ;;
    esac
    shift
done

# shellcheck source=scripts/_install_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_install_lib.sh"

if ! staging && ((EUID != 0)); then
    printf 'uninstall.sh: run me as root: sudo %s\n' "$0" >&2
    exit 1
fi

say "stopping the kiosk"
if staging || [[ -d /run/systemd/system ]]; then
    # Stopping the target stops both daemons (PartOf=); the door's
    # ExecStopPost relocks on the way out.
    # "|| true": on a second run the units are already gone.
    sys_run systemctl disable --now "$TARGET" pickup-kiosk-rearm.timer || true
    sys_run systemctl stop pickup-kiosk-door.service pickup-kiosk-sync.service || true
    sys_run systemctl disable --now pickup-hub.service || true
else
    note "systemd is not running here: nothing to stop"
fi

say "removing units from $UNITDIR"
removed=0
for unit in "${UNITS[@]}"; do
    if [[ -e $DESTDIR$UNITDIR/$unit ]]; then
        fs_run rm -f "$DESTDIR$UNITDIR/$unit"
        note "removed $UNITDIR/$unit"
        removed=1
    fi
done
if ((removed)) && { staging || [[ -d /run/systemd/system ]]; }; then
    sys_run systemctl daemon-reload
    sys_run systemctl reset-failed "${UNITS[@]}" 2>/dev/null || true
fi

say "removing the commands in /usr/local/bin"
for cmd in kiosk kioskctl pickup-hub; do
    link=$DESTDIR/usr/local/bin/$cmd
    # Only our own links, never someone else's file of the same name.
    if [[ -L $link && $(readlink "$link") == "$PREFIX/venv/bin/$cmd" ]]; then
        fs_run rm -f "$link"
        note "removed /usr/local/bin/$cmd"
    fi
done

say "removing $PREFIX"
if [[ -e $DESTDIR$PREFIX ]]; then
    fs_run rm -rf "$DESTDIR$PREFIX"
fi

if ((PURGE)); then
    say "purging the configuration, the store and the service user"
    for dir in "$CONF_DIR" "$STATE_DIR" "$CACHE_DIR"; do
        if [[ -e $DESTDIR$dir ]]; then
            fs_run rm -rf "$DESTDIR$dir"
            note "removed $dir"
        fi
    done
    if staging || getent passwd "$SERVICE_USER" >/dev/null; then
        sys_run userdel "$SERVICE_USER"
    fi
else
    note "kept $CONF_DIR (configuration) and $STATE_DIR (the store)"
    note "remove them too with: $0 --purge"
fi
say "done"
