"""Restores and restore drills.

Empty on purpose: importing one module of the package must not import the others
(`list` and `--help` start without SQLAlchemy, psycopg or the store)."""
