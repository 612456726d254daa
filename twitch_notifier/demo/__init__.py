"""Try the bot without any account: `./quickstart.sh demo` (or `python -m twitch_notifier.demo`).

It starts the fake Discord and fake Twitch of tests/fakes/ on 127.0.0.1, runs the real `python bot.py` against
them, plays a short story (or lets you drive it with --interactive) and shows each message as Discord would:
in the terminal (render_terminal) and, with --html, as a static page in Discord's dark theme (render_html).
Product code that imports the test doubles; nothing in the bot imports it (tests/test_architecture.py).
"""
