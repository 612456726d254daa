"""Storage below database.py: the schema's history (migrations.py, postgres_schema.py) and the drivers that run
its SQL on SQLite (sqlite_driver.py) or PostgreSQL (postgres_driver.py) behind one interface (driver.py)."""
