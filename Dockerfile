# The Twitch -> Discord notifier as a container image (Fly.io or any Docker host); see DEPLOYMENT.md.
# No secret is baked in: DISCORD_TOKEN, TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET come from the
# environment at run time (`fly secrets set`, `docker run -e`).

# bookworm pinned: its util-linux (an essential package) provides setpriv, used by ENTRYPOINT below.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in their own layer, so a code change doesn't reinstall them. requirements.lock pins
# every package, transitive ones included, with its hashes (made from requirements.txt, see there):
# the image gets exactly what was tested, and pip refuses any file whose hash is not listed.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

# The unprivileged user the bot runs as. The code stays owned by root: the bot can't modify it.
RUN groupadd --gid 10001 bot \
    && useradd --uid 10001 --gid bot --create-home --shell /usr/sbin/nologin bot \
    && mkdir -p /data \
    && chown bot:bot /data

# The four top-level modules, and the package whole: a module added to it needs no change here.
COPY bot.py config.py database.py twitch_api.py ./
COPY twitch_notifier/ ./twitch_notifier/

# The SQLite file lives on the volume mounted at /data (fly.toml [mounts]); no VOLUME here, the
# platform mounts it.
ENV DATABASE_PATH=/data/twitch_bot.db \
    HTTP_PORT=8080
EXPOSE 8080
STOPSIGNAL SIGTERM

# A new Fly volume is mounted owned by root, which the bot's user could not write to. So the
# container starts as root only for this step: hand /data to `bot`, then setpriv switches to that
# user and execs the command; the bot itself never runs as root, and if the hand-over fails nothing
# starts (set -e). Started as another user already (`docker run --user 10001`), it just execs.
ENTRYPOINT ["/bin/sh", "-c", "set -e; if [ \"$(id -u)\" = 0 ]; then chown -R bot:bot /data; exec setpriv --reuid=bot --regid=bot --init-groups -- \"$@\"; fi; exec \"$@\"", "entrypoint"]
CMD ["python", "bot.py"]
