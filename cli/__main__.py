"""`python -m cli` runs dumpledger (the tests use it to run the real program)."""

from cli.main import run

run()
