"""Per-source parsing of deliveries, one pure module per source (``events.parse`` calls them).

Each module reads an already-verified, already-JSON-decoded payload (and headers) and says
which event it is and which delivery id makes it exactly once; it raises PayloadError for
a payload its sender would never send (answered 422).
"""

from __future__ import annotations


class PayloadError(ValueError):
    """The payload is not what this source sends (``events.parse`` answers 422)."""
