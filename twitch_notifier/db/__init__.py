"""The database schema's history: ordered migrations with their descriptions (database.py runs them)."""
