"""EventSub push: WebSocket shards of a conduit, the webhook receiver, and the upkeep of both."""
