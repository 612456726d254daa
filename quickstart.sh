#!/usr/bin/env bash
# Twitch -> Discord live notifier: set up and run.
#   ./quickstart.sh          create .venv, install, create .env if missing, start the bot
#   ./quickstart.sh test     create .venv, install with dev tools, run ruff, mypy and the whole test suite
#   ./quickstart.sh check    validate the configuration and exit (no Discord connection)
#   ./quickstart.sh demo     try it without any account: the real bot against a local fake Discord and Twitch
#                            (--interactive: drive it yourself; --html FILE: also write the messages as a page)
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

venv_works() {
    "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1 && "$VENV/bin/python" -m pip --version >/dev/null 2>&1
}

make_venv() {
    need_python
    # A venv whose creation was interrupted (or whose Python was removed) has no working python or
    # no pip, and pip install would fail in it with a confusing error: start it again instead.
    if [ -e "$VENV" ] && ! venv_works; then
        echo "$VENV is incomplete (interrupted set-up?) or broken: removing it and creating it again ..."
        rm -rf "$VENV"
    fi
    if [ ! -e "$VENV" ]; then
        echo "Creating $VENV ..."
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$1"
}

ask_secret() {
    # ask_secret FILE NAME PROMPT: read a value without echoing it and append NAME=value to FILE
    local value=""
    while [ -z "$value" ]; do
        read -r -s -p "$3: " value
        echo
    done
    printf '%s=%s\n' "$2" "$value" >> "$1"
}

ENV_TMP=""

drop_env_tmp() {
    # Ctrl-C or a kill during the questions: no half-written .env stays behind, and echo comes back on.
    if [ -n "$ENV_TMP" ]; then
        rm -f -- "$ENV_TMP"
    fi
    if [ -t 0 ]; then
        stty echo 2>/dev/null || true
    fi
}

make_env() {
    [ -f .env ] && return 0
    if [ -t 0 ] && [ -t 1 ]; then
        echo "No .env yet: let's create one. Values are not shown as you type."
        echo "  Discord bot token: https://discord.com/developers/applications -> your app -> Bot -> Reset Token"
        echo "  Twitch client id/secret: https://dev.twitch.tv/console/apps -> your app -> Manage"
        umask 077
        # The answers go to a temporary file beside .env (mode 600, from mktemp), which becomes .env
        # in one rename once all three are given: .env is either complete or absent.
        ENV_TMP="$(mktemp .env.XXXXXX)"
        trap drop_env_tmp EXIT
        trap 'drop_env_tmp; echo; echo "Interrupted: no .env written." >&2; exit 130' INT
        trap 'drop_env_tmp; exit 143' TERM
        ask_secret "$ENV_TMP" DISCORD_TOKEN "Discord bot token"
        ask_secret "$ENV_TMP" TWITCH_CLIENT_ID "Twitch client ID"
        ask_secret "$ENV_TMP" TWITCH_CLIENT_SECRET "Twitch client secret"
        mv -f -- "$ENV_TMP" .env
        ENV_TMP=""
        trap - EXIT INT TERM
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
    demo)
        make_venv requirements-demo.txt
        exec "$VENV/bin/python" -m twitch_notifier.demo "${@:2}"
        ;;
    test)
        make_venv requirements-dev.txt
        "$VENV/bin/ruff" check .
        "$VENV/bin/ruff" format --check .
        "$VENV/bin/mypy"  # files and settings: [tool.mypy] in pyproject.toml
        # Two workers (pytest-xdist) halve the suite on CI's two cores; TEST_WORKERS=0 runs it in one process
        # (for -s or --pdb), and a later -n in the extra arguments wins.
        "$VENV/bin/python" -m pytest -n "${TEST_WORKERS:-2}" "${@:2}"
        ;;
    *)
        echo "usage: ./quickstart.sh [run|test|check|demo]" >&2
        exit 64
        ;;
esac
