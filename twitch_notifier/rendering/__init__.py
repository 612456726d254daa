"""What the bot shows: announcements, list lines, templates and pings, in Discord's JSON shapes.

Pure functions over the domain types (no discord import), so every rendering is testable alone.
"""
