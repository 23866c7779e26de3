"""Use cases backup, verify (restore, drill, cleanup next)."""
