"""The object store (S3-compatible) and the layout of every key in it."""
