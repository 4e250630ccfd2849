"""The gke-istio-mesh CrossGuard policy pack (rules in policies.py, entry point __main__.py)."""
