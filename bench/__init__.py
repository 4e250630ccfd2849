"""Offline performance bench of gke-istio-mesh: run with `python -m bench` (see bench/__main__.py).

"What changed between two runs" is `offline.changed_resources`, shared with the tests.
"""
