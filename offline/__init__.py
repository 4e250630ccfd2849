"""The offline engine: run the program under Pulumi mocks and ask what it declared.

Used by the user commands (`tools.render`, `tools.flip`), the bench and the tests; it
imports only the program (`__main__.py`, `components`) and holds no test doubles (those live in
`tests/fakes/`). Modules:

- `engine`: mocks that answer like the providers, a monitor that records every
  registration with its options, `run_program`, `Program` and `changed_resources`.
- `x509`: real keys and certificates for the mocks and for stand-in roots.
- `configs`: stack configs the tests and the bench generate (never the user's stack files).
- `graph`: the engine's ordering as a graph: chains, owners, cross-cluster waits.
- `manifests`: a run as per-cluster Kubernetes objects, Helm releases and cloud resources.
- `schemas`: those objects checked against Kubernetes' and Istio's published schemas.
- `observability`: the dashboard checked against Cloud Monitoring's Dashboard schema (the API's
  discovery document), PromQL parsed and alert rules tested by promtool.
- `progress`: timed progress lines on stderr for the long commands.
"""

from offline.engine import (
    FROM_STACK_FILE,
    GCP_PROJECT_DEFAULT,
    PROJECT,
    ROOT,
    MeshMocks,
    Program,
    ProgramError,
    RecordingMonitor,
    Resource,
    ResourceDiff,
    changed_resources,
    project_config,
    run_program,
    run_with_weights,
    stack_file_config,
)
from offline.x509 import pem_key, private_key, self_signed_pem

__all__ = [
    "FROM_STACK_FILE",
    "GCP_PROJECT_DEFAULT",
    "PROJECT",
    "ROOT",
    "MeshMocks",
    "Program",
    "ProgramError",
    "RecordingMonitor",
    "Resource",
    "ResourceDiff",
    "changed_resources",
    "pem_key",
    "private_key",
    "project_config",
    "run_program",
    "run_with_weights",
    "self_signed_pem",
    "stack_file_config",
]
