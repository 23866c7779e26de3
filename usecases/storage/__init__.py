"""The store as the catalogs sharing it see it: roots, collection, repairs, rebuilding a lost
catalog from the store, and the commands that forget a catalog or adopt its blobs.

Empty on purpose: importing one module of the package must not import the others."""
