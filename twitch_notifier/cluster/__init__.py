"""Several bot processes on one database: shard ownership, the leader election and wake-ups."""
