"""Wrappers around PostgreSQL: connections, snapshots and the client programs."""
