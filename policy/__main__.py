"""Entry point the Pulumi CLI runs for `pulumi preview --policy-pack policy`.

Constructing PolicyPack starts the analyzer server and blocks, so nothing imports this
module: the tests import the rules from policies.py. The CLI runs this directory with
itself on sys.path, hence the top-level import.
"""

from policies import PACK_NAME, POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=PACK_NAME,
    policies=POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Hardened private GKE, mesh-wide STRICT mTLS in every cluster, 100 % route weights, "
    "and a mesh root CA key that never enters a cluster.",
)
