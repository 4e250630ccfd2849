"""The offline engine the tests share (it lives in tools/ because `tools.render` uses it too)."""

from tools.offline import (
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
    pem_key,
    project_config,
    run_program,
    self_signed_pem,
    stack_file_config,
)

__all__ = [
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
    "project_config",
    "run_program",
    "self_signed_pem",
    "stack_file_config",
]
