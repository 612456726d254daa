"""Tests of the twitch_notifier package, mirroring its layout."""
