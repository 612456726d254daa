#!/usr/bin/env bash
# Make sure a headless Chromium is on this machine for the demo's HTML test (tests/test_demo.py): Debian's
# `chromium` package, installed with apt-get when it is missing, and a colour emoji font so the bot's 🔴 is not
# drawn as a box. Prints the browser's path on success.
# With no browser and no way to install one it fails loudly (exit 1, saying why): the test must not skip.
set -euo pipefail

find_chromium() {
    local name
    for name in chromium chromium-browser; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

has_emoji_font() {
    command -v fc-list >/dev/null 2>&1 && fc-list | grep -qi "color emoji"
}

packages=()
find_chromium >/dev/null || packages+=(chromium fonts-dejavu-core)
has_emoji_font || packages+=(fonts-noto-color-emoji)

if [ "${#packages[@]}" -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo -n"
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" != 0 ] && [ -z "$SUDO" ]; }; then
        if ! find_chromium >/dev/null; then
            echo "Chromium is not installed and cannot be installed here (no apt-get, or not root and no sudo):" \
                "install Debian's 'chromium' package, or any chromium on PATH, to run the demo's HTML test." >&2
            exit 1
        fi
        echo "No colour emoji font and no way to install fonts-noto-color-emoji: emoji show as boxes." >&2
    else
        echo "Installing ${packages[*]} with apt-get (once: the demo's HTML test screenshots its page) ..." >&2
        # Quiet, non-interactive and logged: only the log's tail is shown when it fails.
        LOG="$(mktemp)"
        trap 'rm -f -- "$LOG"' EXIT
        if ! { $SUDO apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}"; } \
            >"$LOG" 2>&1; then
            echo "apt-get could not install ${packages[*]}:" >&2
            tail -n 20 "$LOG" >&2
            find_chromium >/dev/null || exit 1
        fi
    fi
fi

if ! find_chromium; then
    echo "apt-get installed chromium, but no chromium is on PATH" >&2
    exit 1
fi
