"""The chunked store: content-defined chunks, compressed one by one, appended to pack files;
an artifact is a manifest (its ordered chunk list and the SHA-256 of its whole stream)."""
