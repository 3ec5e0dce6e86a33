# shellcheck shell=bash
# The hub part of scripts/install.sh (--with-hub). Sourced by install.sh,
# which sets SRC, VENV, PREFIX, DESTDIR, DRY_RUN, ENABLE, UNITDIR and the
# helpers (say, note, warn, sys_run, fs_run, staging, install_file). Every
# step checks before it changes anything, so re-running changes nothing.

readonly HUB_USER=pickup-hub
readonly HUB_CONF_DIR=/etc/pickup-hub
readonly HUB_CONF=$HUB_CONF_DIR/hub.toml
readonly HUB_STATE_DIR=/var/lib/pickup-hub
readonly HUB_UNIT=pickup-hub.service

install_hub() {
    say "hub: service user $HUB_USER"
    if getent passwd "$HUB_USER" >/dev/null; then
        note "exists"
    else
        sys_run useradd --system --user-group --home-dir "$HUB_STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "pickup hub" "$HUB_USER"
    fi

    say "hub: program (pickup-kiosk[hub]) in $VENV"
    if staging; then
        sys_run "$VENV/bin/pip" install --disable-pip-version-check --no-input --upgrade "${SRC}[hub]"
    elif "$VENV/bin/python" -c 'import aiomqtt, starlette, uvicorn, apprise' 2>/dev/null &&
        cmp -s "$SRC/pyproject.toml" "$PREFIX/.hub-pyproject.toml"; then
        note "already installed"
    else
        local build
        build=$(mktemp -d)
        tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./build \
            --exclude='*.egg-info' -cf - . | tar -C "$build" -xf -
        "$VENV/bin/pip" install --disable-pip-version-check --no-input --upgrade "${build}[hub]"
        rm -rf "$build"
        cp "$SRC/pyproject.toml" "$PREFIX/.hub-pyproject.toml"
    fi
    if [[ -f $SRC/docs/hub.md ]]; then
        install_file "$SRC/docs/hub.md" "$PREFIX/docs/hub.md" 0644 || true
    fi
    local link=$DESTDIR/usr/local/bin/pickup-hub want=$VENV/bin/pickup-hub
    if [[ -L $link && $(readlink "$link") == "$want" ]]; then
        note "unchanged /usr/local/bin/pickup-hub"
    else
        fs_run install -d -m 0755 "$DESTDIR/usr/local/bin"
        fs_run ln -sfn "$want" "$link"
        note "linked /usr/local/bin/pickup-hub -> $want"
    fi

    say "hub: configuration $HUB_CONF"
    fs_run install -d -m 0750 "$DESTDIR$HUB_CONF_DIR"
    sys_run chown "root:$HUB_USER" "$HUB_CONF_DIR"
    if [[ -e $DESTDIR$HUB_CONF ]]; then
        note "kept the existing $HUB_CONF"
    else
        fs_run install -m 0640 "$SRC/hub/example.toml" "$DESTDIR$HUB_CONF"
        sys_run chown "root:$HUB_USER" "$HUB_CONF"
        note "wrote $HUB_CONF from hub/example.toml: edit [[site]] and [mqtt]"
    fi
    if [[ -e $DESTDIR$HUB_CONF_DIR/hub.key ]]; then
        note "kept the hub's keys"
    else
        # Made by root in the root-owned directory, then handed to the hub's
        # user: 0600 from the first byte (pickup-hub keygen).
        sys_run "$VENV/bin/pickup-hub" keygen --config "$HUB_CONF"
        sys_run chown "$HUB_USER:$HUB_USER" "$HUB_CONF_DIR/hub.key" "$HUB_CONF_DIR/auditor.key"
        note "add the [trust] lines printed above to each kiosk's kiosk.toml"
    fi
    if [[ ! -d $DESTDIR$HUB_STATE_DIR ]]; then
        fs_run install -d -m 0750 "$DESTDIR$HUB_STATE_DIR"
        sys_run chown "$HUB_USER:$HUB_USER" "$HUB_STATE_DIR"
    else
        note "kept $HUB_STATE_DIR and the archive in it"
    fi

    say "hub: systemd unit $HUB_UNIT"
    fs_run install -d -m 0755 "$DESTDIR$UNITDIR"
    local changed=0
    install_file "$SRC/systemd/$HUB_UNIT" "$UNITDIR/$HUB_UNIT" 0644 && changed=1
    if [[ -z $DESTDIR && $DRY_RUN == 0 ]] && ! [[ -d /run/systemd/system ]]; then
        note "systemd is not running here: start with  systemctl enable --now $HUB_UNIT"
        return
    fi
    ((changed)) && sys_run systemctl daemon-reload
    if ((ENABLE)); then
        sys_run systemctl enable "$HUB_UNIT"
        if ((changed)); then
            sys_run systemctl restart "$HUB_UNIT"
        else
            sys_run systemctl start "$HUB_UNIT"
        fi
    fi
    sys_run runuser -u "$HUB_USER" -- "$VENV/bin/pickup-hub" doctor --config "$HUB_CONF" ||
        warn "pickup-hub doctor found problems (above); each line says how to fix it"
}
