"""Discord's size limits on what a bot sends, named once.

Source: https://discord.com/developers/docs/resources/message#embed-object-embed-limits and the
application-command docs (choices, autocomplete).
"""

from __future__ import annotations

CONTENT_LIMIT = 2000
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FIELD_NAME_LIMIT = 256
EMBED_FIELD_VALUE_LIMIT = 1024
EMBED_AUTHOR_LIMIT = 256
EMBED_FOOTER_LIMIT = 2048
BUTTON_LABEL_LIMIT = 80
CHOICE_NAME_LIMIT = 100
"""An application-command choice's name and value (autocomplete answers)."""
CHOICE_VALUE_LIMIT = 100
MAX_CHOICES = 25
"""At most this many choices in one autocomplete answer."""
NONCE_LIMIT = 25
"""A message nonce is at most 25 characters."""
