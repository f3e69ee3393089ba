"""Routing: path templates (one parser, one set of converters) and the router.

The router and the template parser are one compiled module (``_router_c``, pure twin
``_router_py``, chosen by :mod:`ember.routing.router`); :mod:`ember.routing.templates` derives what
the rest of Ember needs from a parsed template (parameter kinds, the duplicate-route
key, the OpenAPI path, ``url_for``'s expansion).
"""

from __future__ import annotations

from ember.routing.router import CONVERTORS, KINDS, Router, parse_template

__all__ = ["CONVERTORS", "KINDS", "Router", "parse_template"]
