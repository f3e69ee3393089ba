"""OpenTelemetry tracing (extra ``otel``): spans for requests, model calls, tool calls,
cache lookups and database queries.

    from ember.tracing import instrument
    instrument(app)              # exporter from the OTEL_* environment variables

- A ``SERVER`` span per request (HTTP semantic conventions: ``http.request.method``,
  ``http.route``, ``url.path``, ``http.response.status_code``, ``error.type``...),
  continuing the caller's trace from an incoming ``traceparent``; it ends when the
  response (a stream too) has been sent.
- A ``CLIENT`` span per model call inside it (GenAI semantic conventions:
  ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.usage.input_tokens``/``output_tokens``, plus ``ember.cost_usd`` and, for
  streams, ``ember.time_to_first_token_s``), and the upstream request carries the
  span's ``traceparent``; ``execute_tool`` spans for ``ToolRegistry.call``, spans for
  route-cache lookups and database queries.
- Export: with no ``tracer_provider``, an SDK provider with a batch OTLP/HTTP exporter
  configured by the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``,
  ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``...; ``OTEL_SDK_DISABLED=true``
  turns it all off).
- Zero cost when off: ``import ember`` does not import this package or OpenTelemetry;
  an app without ``instrument()`` has no tracing middleware, and the model transport
  checks one module attribute per upstream call.
"""

from __future__ import annotations

from ember.tracing._tracing import Tracing, instrument, uninstrument

__all__ = ["Tracing", "instrument", "uninstrument"]

def __dir__() -> list[str]:
    return __all__

