"""Test doubles of the APIs the commands talk to. Only tests import them; the engine the commands
ship (`offline/`) holds none. Each fake's docstring says which real behaviour it reproduces.

- `fake_kube`: fake Kubernetes API servers on loopback (tools.verify, tools.flip's readback).
- `fake_prometheus`: a fake Prometheus HTTP API on loopback serving scripted Istio series (tools.flip).
- `fake_automation`: a fake Automation API stack (stack file, preview from the offline engine, "up"
  into fake Kubernetes API servers) for tools.flip's tests.
- `edge_model`: where Google's global external Application Load Balancer sends a request, given the
  declared URL map and backend services and each cluster's ingress health (the edge's failover tests).
- `loopback`: the HTTP server on a free loopback port both API fakes serve on.
"""
