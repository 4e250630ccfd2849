"""Test doubles of the APIs the commands talk to. Only tests import them; the engine the commands
ship (`offline/`) holds none. Each fake's docstring says which real behaviour it reproduces.

- `fake_kube`: fake Kubernetes API servers on loopback (tools.verify, tools.flip's readback).
- `fake_prometheus`: a fake Prometheus HTTP API on loopback serving scripted Istio series (tools.flip).
- `fake_automation`: a fake Automation API stack (stack file, preview from the offline engine, "up"
  into fake Kubernetes API servers) for tools.flip's tests.
- `edge_model`: where Google's global external Application Load Balancer sends a request, given the
  declared URL map and backend services and each cluster's ingress health (the edge's failover tests).
- `fake_gcs`: a fake Cloud Storage JSON API on loopback (objects insert/get/delete with generation
  preconditions) for tools.flip's lease.
- `neg_controller`: GKE's NEG controller (kubernetes/ingress-gce) on a fake clock: the neg-status report,
  NEGs created late and only in zones with nodes, garbage collection (the edge's lifecycle tests).
- `pulumi_cli`: a stand-in `pulumi` binary answering the commands the Automation API runs for the flip,
  so tools/flip/stack.py's real code path runs; `stand_in` puts it on PATH and seeds its state.
- `loopback`: the HTTP server on a free loopback port the API fakes serve on.
"""
