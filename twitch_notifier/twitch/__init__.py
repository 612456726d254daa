"""Twitch's vocabulary: the values Helix returns, the errors the client raises, and login parsing.

Pure data and functions (no aiohttp): the Helix client itself is the top-level twitch_api.py.
"""
