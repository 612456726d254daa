"""Operating the bot: the HTTP health endpoint and the Prometheus metrics."""
