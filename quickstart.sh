#!/usr/bin/env bash
# Twitch -> Discord live notifier: set up and run.
#   ./quickstart.sh          create .venv, install, create .env if missing, start the bot
#   ./quickstart.sh test     create .venv, install with dev tools, run ruff and the whole test suite
#   ./quickstart.sh check    validate the configuration and exit (no Discord connection)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV=".venv"

need_python() {
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        echo "Python 3.11 or newer is needed: install it, or set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "Python 3.11 or newer is needed; $("$PYTHON" --version 2>&1) was found. Set PYTHON=..." >&2
        exit 1
    fi
}

make_venv() {
    need_python
    if [ ! -x "$VENV/bin/python" ]; then
        echo "Creating $VENV ..."
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$1"
}

ask_secret() {
    # ask_secret NAME PROMPT: read a value without echoing it and append it to .env
    local value=""
    while [ -z "$value" ]; do
        read -r -s -p "$2: " value
        echo
    done
    printf '%s=%s\n' "$1" "$value" >> .env
}

make_env() {
    [ -f .env ] && return 0
    if [ -t 0 ] && [ -t 1 ]; then
        echo "No .env yet: let's create one. Values are not shown as you type."
        echo "  Discord bot token: https://discord.com/developers/applications -> your app -> Bot -> Reset Token"
        echo "  Twitch client id/secret: https://dev.twitch.tv/console/apps -> your app -> Manage"
        umask 077
        : > .env
        ask_secret DISCORD_TOKEN "Discord bot token"
        ask_secret TWITCH_CLIENT_ID "Twitch client ID"
        ask_secret TWITCH_CLIENT_SECRET "Twitch client secret"
        echo "Saved to .env (readable only by you). Optional settings are listed in README.md."
    else
        echo "No .env file and no terminal to ask in." >&2
        echo "Set DISCORD_TOKEN, TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET in the environment," >&2
        echo "or copy them into a .env file (see README.md, 'Configuration')." >&2
    fi
}

case "${1:-run}" in
    run)
        make_venv requirements.txt
        make_env
        exec "$VENV/bin/python" bot.py
        ;;
    check)
        make_venv requirements.txt
        exec "$VENV/bin/python" bot.py --check
        ;;
    test)
        make_venv requirements-dev.txt
        "$VENV/bin/ruff" check .
        "$VENV/bin/ruff" format --check .
        "$VENV/bin/python" -m pytest "${@:2}"
        ;;
    *)
        echo "usage: ./quickstart.sh [run|test|check]" >&2
        exit 64
        ;;
esac
