"""Offline performance bench of gke-istio-mesh: run with `python -m bench` (see bench/__main__.py).

`bench.graph.changed_resources` is the reusable "what changed between two runs"
check that the tests use too.
"""
