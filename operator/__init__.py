"""The operator: kopf handlers that reconcile Sessions into runner Jobs.

Imported as ``ambient.operator``: a top-level ``operator`` would shadow the standard library.
"""
