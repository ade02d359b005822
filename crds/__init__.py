"""The API: Session and NamespacePolicy models and the CRD generator."""
