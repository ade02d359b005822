"""History archival: when a window of entries moves to the store (rules, pure) and the
archiver that moves it (I/O)."""
