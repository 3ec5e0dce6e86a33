#!/usr/bin/env bash
# Install or upgrade pickup-kiosk on Raspberry Pi OS (Bookworm or later).
#
#   sudo scripts/install.sh                 # install, or upgrade in place
#   sudo scripts/install.sh --no-enable     # install, do not enable/start
#   sudo scripts/install.sh --with-hub      # also the hub (pickup-hub, docs/hub.md)
#   scripts/install.sh --dry-run            # print what it would do
#   DESTDIR=/tmp/root scripts/install.sh    # stage into a throwaway root
#
# Run it from a checkout. Re-running it upgrades the program and the unit
# files in place; it never touches an existing /etc/pickup-kiosk/kiosk.toml
# or the store under /var/lib/pickup-kiosk.
#
# DESTDIR=DIR: every path is prefixed with DIR, and whatever would change the
# system itself (apt-get, groupadd, useradd, usermod, chown, the venv and pip,
# systemctl) is printed as "would run: ..." instead of run.
# --dry-run: changes nothing at all; every step is printed as "would run: ...".
# UNITDIR=DIR: where the unit files go (default /etc/systemd/system).

set -euo pipefail
# The venv and the units must be readable by the service user whatever
# root's own umask is.
umask 022

readonly APP=pickup-kiosk
readonly SERVICE_USER=pickup-kiosk
readonly PREFIX=/opt/pickup-kiosk
readonly VENV=$PREFIX/venv
readonly CONF_DIR=/etc/pickup-kiosk
readonly CONF=$CONF_DIR/kiosk.toml
readonly STATE_DIR=/var/lib/pickup-kiosk
readonly TARGET=pickup-kiosk.target
# Groups that own the devices the door daemon opens (see the door unit).
readonly DEVICE_GROUPS=(gpio video render input audio spi)

DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}
UNITDIR=${UNITDIR:-/etc/systemd/system}
PYTHON=${PYTHON:-python3}
DRY_RUN=0
UNCONFIGURED=0
WROTE_EXAMPLE=0  # install_config wrote (or, dry run, would write) the example
ENABLE=1
WITH_HUB=0

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
    sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while (($#)); do
    case $1 in
        --dry-run) DRY_RUN=1 ;;
        --no-enable) ENABLE=0 ;;
        --with-hub) WITH_HUB=1 ;;
        -h | --help) usage; exit 0 ;;
        *) printf 'install.sh: unknown option %s (try --help)\n' "$1" >&2; exit 2 ;;
    esac
    shift
done

# shellcheck source=scripts/_install_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_install_lib.sh"
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

have_systemd() { [[ -d /run/systemd/system ]]; }
has_gpiochip() { compgen -G '/dev/gpiochip*' >/dev/null; }
group_exists() { getent group "$1" >/dev/null; }

# ---------------------------------------------------------------------------

preflight() {
    [[ -f $SRC/pyproject.toml && -d $SRC/systemd ]] ||
        die "run me from a pickup-kiosk checkout ($SRC has no pyproject.toml or systemd/)"
    if ! staging && ((EUID != 0)); then
        die "run me as root: sudo $0 (or stage with DESTDIR=DIR, or --dry-run)"
    fi
    if ! staging; then
        "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
            die "$PYTHON is older than 3.11; Raspberry Pi OS Bookworm or later is needed"
    fi
    say "installing $APP from $SRC${DESTDIR:+ into DESTDIR=$DESTDIR}$([[ $DRY_RUN == 1 ]] && echo ' (dry run)')"
}

missing_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            printf '%s\n' "$pkg"
    done
}

apt_install() {
    sys_run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

install_packages() {
    say "system packages"
    # python3-venv: the program's own venv. fonts-wqy-microhei: a font that
    # draws Chinese (the screens are in Chinese by default). fontconfig:
    # fc-match, used to find it. libsdl2-*: pygame's wheels for 32-bit Pi OS
    # (piwheels) link the system SDL. sqlite3: backups (docs/install.md).
    # espeak-ng, sox: the voice prompts, synthesised offline (install_voice).
    local pkgs=(python3-venv python3-dev fonts-wqy-microhei fontconfig sqlite3
        libsdl2-2.0-0 libsdl2-ttf-2.0-0 libsdl2-image-2.0-0 libsdl2-mixer-2.0-0
        espeak-ng sox)
    # lgpio (gpiozero's pin factory on a Pi) builds with swig and liblgpio-dev
    # when no wheel fits; liblgpio-dev is only in Raspberry Pi OS's archive.
    local optional=()
    has_gpiochip && optional=(swig liblgpio-dev)
    if staging; then
        apt_install "${pkgs[@]}"
        ((${#optional[@]} == 0)) || apt_install "${optional[@]}"
        return
    fi
    local missing
    mapfile -t missing < <(missing_packages "${pkgs[@]}" "${optional[@]}")
    if ((${#missing[@]} == 0)); then
        note "all present"
        return
    fi
    apt-get update
    mapfile -t missing < <(missing_packages "${pkgs[@]}")
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
    local pkg
    mapfile -t missing < <(missing_packages "${optional[@]}")
    for pkg in "${missing[@]}"; do
        apt_install "$pkg" || warn "could not install $pkg; pip may still find an lgpio wheel"
    done
}

create_user() {
    say "service user $SERVICE_USER"
    if ! group_exists gpio; then
        # Raspberry Pi OS has a gpio group and a udev rule giving it
        # /dev/gpiochip*; elsewhere make the group so the unit's
        # SupplementaryGroups= resolves.
        note "no gpio group here (not Raspberry Pi OS?): creating it"
        sys_run groupadd --system gpio
    fi
    local group wanted=() missing=() have
    have=" $(id -nG "$SERVICE_USER" 2>/dev/null || true) "
    for group in "${DEVICE_GROUPS[@]}"; do
        if group_exists "$group" || [[ $group == gpio ]]; then
            wanted+=("$group")
            [[ $have == *" $group "* ]] || missing+=("$group")
        else
            note "group $group does not exist here: skipped"
        fi
    done
    if ! getent passwd "$SERVICE_USER" >/dev/null; then
        sys_run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "pickup kiosk" \
            --groups "$(IFS=,; echo "${wanted[*]}")" "$SERVICE_USER"
    elif ((${#missing[@]})); then
        sys_run usermod --append --groups "$(IFS=,; echo "${missing[*]}")" "$SERVICE_USER"
    else
        note "exists, in groups: ${wanted[*]}"
    fi
}

install_program() {
    say "program in $VENV"
    fs_run install -d -m 0755 "$DESTDIR$PREFIX" "$DESTDIR$PREFIX/docs"
    if [[ -f $SRC/docs/install.md ]]; then
        install_file "$SRC/docs/install.md" "$PREFIX/docs/install.md" 0644 || true
    fi
    # [device]: gpiozero, pygame, and lgpio where the machine is a Pi
    local extra='[device]'
    if staging; then
        [[ -x $DESTDIR$VENV/bin/python ]] || sys_run "$PYTHON" -m venv "$VENV"
        sys_run "$VENV/bin/pip" install --disable-pip-version-check --no-input --upgrade "$SRC$extra"
        return
    fi
    if ! "$VENV/bin/python" -c '' 2>/dev/null; then
        # Missing, or broken by a Python upgrade of the OS: make it afresh.
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    # Build from a copy so the checkout gets no root-owned build/ or egg-info.
    local build
    build=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: $build is local
    trap "rm -rf '$build'" EXIT
    tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./build \
        --exclude='*.egg-info' -cf - . | tar -C "$build" -xf -
    "$VENV/bin/pip" install --disable-pip-version-check --no-input --upgrade "$build$extra"
}

# The spoken prompts, synthesised once into $PREFIX/voice ([voice] dir), and
# on a Pi the LED strip's driver (the [slotlight] extra; optional: a failure
# leaves the door as it is). Re-running remakes only prompts whose words changed.
install_voice() {
    say "voice prompts in $PREFIX/voice"
    if staging; then
        sys_run "$VENV/bin/kiosk" voice build "$PREFIX/voice"
        if has_gpiochip; then
            sys_run "$VENV/bin/pip" install --no-input "${APP}[slotlight]"
        fi
        return
    fi
    "$VENV/bin/kiosk" voice build "$PREFIX/voice" ||
        warn "the voice prompts could not be made (above); the door runs silent until they are"
    if has_gpiochip; then
        "$VENV/bin/pip" install --disable-pip-version-check --no-input --quiet "${APP}[slotlight]" ||
            warn "the LED strip driver did not install; the slot light stays off"
    fi
}

# `kiosk` and `kioskctl` on everyone's PATH, for the installer and the owner.
link_commands() {
    say "commands in /usr/local/bin"
    local cmd
    for cmd in kiosk kioskctl; do
        local link=$DESTDIR/usr/local/bin/$cmd want=$VENV/bin/$cmd
        if [[ -L $link && $(readlink "$link") == "$want" ]]; then
            note "unchanged /usr/local/bin/$cmd"
        elif [[ -e $link && ! -L $link ]]; then
            warn "/usr/local/bin/$cmd exists and is not ours: left alone; use $want"
        else
            fs_run install -d -m 0755 "$DESTDIR/usr/local/bin"
            fs_run ln -sfn "$want" "$link"
            note "linked /usr/local/bin/$cmd -> $want"
        fi
    done
}

# install_file SRC DEST MODE: copy only when the content or mode differs, so a
# re-run leaves every file (and its time stamp) alone. Returns 0 when it
# wrote, 1 when the file was already right.
CHANGED_UNITS=0
install_file() {
    local src=$1 dest=$DESTDIR$2 mode=$3
    if [[ -f $dest ]] && cmp -s "$src" "$dest" &&
        [[ $(stat -c %a "$dest") == "${mode#0}" ]]; then
        note "unchanged $2"
        return 1
    fi
    fs_run install -D -m "$mode" "$src" "$dest"
    note "installed $2"
    return 0
}

install_config() {
    say "configuration $CONF"
    fs_run install -d -m 0755 "$DESTDIR$CONF_DIR"
    if [[ -e $DESTDIR$CONF ]]; then
        note "kept the existing $CONF"
        if [[ $(stat -c %a "$DESTDIR$CONF") =~ [1-7]$ ]]; then
            warn "$CONF is readable by every user and may hold the broker password: chmod 0640 $CONF"
        fi
        return
    fi
    local example=$SRC/kiosk/example.toml
    [[ -f $example ]] || die "$example is missing from the checkout"
    local tmp
    tmp=$(mktemp)
    cp "$example" "$tmp"
    if ! has_gpiochip; then
        set_board_sim "$tmp"
        note "no /dev/gpiochip* on this machine: wrote board = \"sim\" (simulated board)"
        note "on a Raspberry Pi, set [hardware] board = \"gpio\" in $CONF"
    fi
    fs_run install -m 0640 "$tmp" "$DESTDIR$CONF"
    rm -f "$tmp"
    WROTE_EXAMPLE=1
    # root owns it (the services cannot change their own config); the
    # service group reads it (it may hold the broker password).
    sys_run chown "root:$SERVICE_USER" "$CONF"
    note "wrote $CONF from kiosk/example.toml: edit it (site id, keys, [mqtt])"
}

# Set [hardware] board = "sim" in a TOML file: replace the key in that table,
# add it to the table, or add the table.
set_board_sim() {
    local file=$1 out
    out=$(mktemp)
    awk '
        function flush() { if (in_hw && !done) { print "board = \"sim\""; done = 1 } }
        /^[[:space:]]*\[/ {
            flush()
            in_hw = ($0 ~ /^[[:space:]]*\[hardware\][[:space:]]*(#.*)?$/)
            print; next
        }
        in_hw && !done && /^[[:space:]]*board[[:space:]]*=/ {
            print "board = \"sim\"  # set by install.sh: no /dev/gpiochip* here"; done = 1; next
        }
        { print }
        END {
            flush()
            if (!done) { print ""; print "[hardware]"; print "board = \"sim\"" }
        }
    ' "$file" >"$out"
    cat "$out" >"$file"
    rm -f "$out"
}

install_state_dir() {
    say "state directory $STATE_DIR"
    # systemd's StateDirectory= makes this too, but `kiosk doctor` below runs
    # before the first start and must find it writable by the service user.
    if [[ ! -d $DESTDIR$STATE_DIR ]]; then
        fs_run install -d -m 0750 "$DESTDIR$STATE_DIR"
        sys_run chown "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
    else
        note "kept $STATE_DIR and the store in it"
    fi
}

install_units() {
    say "systemd units in $UNITDIR"
    fs_run install -d -m 0755 "$DESTDIR$UNITDIR"
    local unit
    for unit in "$SRC"/systemd/*.service "$SRC"/systemd/*.target "$SRC"/systemd/*.timer; do
        [[ -e $unit ]] || continue
        [[ $(basename "$unit") == pickup-hub.service ]] && continue # --with-hub
        if install_file "$unit" "$UNITDIR/$(basename "$unit")" 0644; then
            CHANGED_UNITS=1
        fi
    done
}

start_services() {
    say "services"
    if [[ -z $DESTDIR && $DRY_RUN == 0 ]] && ! have_systemd; then
        note "systemd is not running here: not enabling; start with"
        note "  systemctl enable --now $TARGET"
        return
    fi
    ((CHANGED_UNITS)) && sys_run systemctl daemon-reload
    if ((!ENABLE)); then
        note "--no-enable: start with  systemctl enable --now $TARGET"
        return
    fi
    if config_is_the_example; then
        # A door running the demo site with no keys opens for nobody and confuses
        # everyone: leave it stopped (and off at boot) until the owner set it up.
        UNCONFIGURED=1
        note "not started: $CONF still has the example's site id \"demo-site\"."
        note "Edit it (site id, keys, [mqtt]), run 'sudo -u $SERVICE_USER kiosk doctor', then"
        note "  sudo systemctl enable --now $TARGET"
        return
    fi
    sys_run systemctl enable "$TARGET"
    if ! staging && systemctl --quiet is-active "$TARGET"; then
        # An upgrade: run the new code. Both units are PartOf= the target.
        sys_run systemctl restart "$TARGET"
    else
        sys_run systemctl start "$TARGET"
    fi
}

# Whether the config still names the example's site (the installer wrote it
# and nobody has edited it yet).
config_is_the_example() {
    local conf=$DESTDIR$CONF
    # Just written from the example: so even in a dry run, where it is not.
    ((WROTE_EXAMPLE)) && return 0
    [[ -r $conf ]] || return 1
    awk '
        /^[[:space:]]*\[/ { in_site = ($0 ~ /^[[:space:]]*\[site\][[:space:]]*(#.*)?$/); next }
        in_site && /^[[:space:]]*id[[:space:]]*=[[:space:]]*"demo-site"/ { found = 1 }
        END { exit !found }
    ' "$conf"
}

check_install() {
    say "checks"
    local kiosk=$VENV/bin/kiosk
    local as_user=(runuser -u "$SERVICE_USER" --)
    if staging; then
        sys_run "${as_user[@]}" env KIOSK_CONFIG="$CONF" "$kiosk" config check
        sys_run "${as_user[@]}" env KIOSK_CONFIG="$CONF" "$kiosk" doctor
        return
    fi
    # As the service user: that is who must be able to read the config and
    # write the store (a store file created by root would lock it out).
    if ! "${as_user[@]}" env KIOSK_CONFIG="$CONF" "$kiosk" config check; then
        warn "the configuration has a problem (above): fix $CONF, then run"
        warn "  sudo -u $SERVICE_USER kiosk doctor && sudo systemctl restart $TARGET"
        return
    fi
    if ! "${as_user[@]}" env KIOSK_CONFIG="$CONF" "$kiosk" doctor; then
        warn "kiosk doctor found problems (above); each line says how to fix it"
    fi
}

main() {
    preflight
    install_packages
    create_user
    install_program
    install_voice
    link_commands
    install_config
    install_state_dir
    install_units
    start_services
    check_install
    if ((WITH_HUB)); then
        # shellcheck source=scripts/_install_hub.sh
        source "$SRC/scripts/_install_hub.sh"
        install_hub
    fi
    if ((UNCONFIGURED)); then
        say "done. The kiosk is installed but stopped: edit $CONF (site id, keys, [mqtt]),"
        note "run 'sudo -u $SERVICE_USER kiosk doctor', then 'sudo systemctl enable --now $TARGET'."
    else
        say "done. The kiosk is running. After editing $CONF, run"
        note "'sudo -u $SERVICE_USER kiosk doctor' and 'sudo systemctl restart $TARGET'."
    fi
    note "Logs: journalctl -u pickup-kiosk-door -u pickup-kiosk-sync"
}

main
