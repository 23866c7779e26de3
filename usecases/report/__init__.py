"""`dumpledger report`: the backups at a glance, one self-contained HTML page.

Empty on purpose: importing one module of the package must not import the others.
"""
