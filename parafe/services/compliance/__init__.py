"""Compliance report per client certificate (issue 21): how each integrator's software uses the interfaces,
against the rules of the interface document (docs/integrators.md).

- :mod:`.classify` turns one exchange a connector saw (connector, method, path, status, error code, operation)
  into an :class:`~.classify.Observation` (pure, no I/O);
- :mod:`.recorder` keeps observations in memory as per-client per-hour counters, a few examples and the
  client's pending duties, and writes them in batches (upserts, every few seconds), never one row per call;
- :mod:`.rules` names the rules, their references in the interface document and how each is judged;
- :mod:`.report` builds the report of one client certificate from the counters and the database state.
"""

from __future__ import annotations
