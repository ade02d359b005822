"""The API: Session and NamespacePolicy models, the CRD generator, and the vocabularies
both apps share (history events, names and labels, times, digests); imports nothing of ours
(docs/architecture.md)."""
