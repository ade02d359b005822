"""The validating admission webhook: Sessions and NamespacePolicies checked at the API server."""
