"""The datamesh policy pack: `pulumi preview --policy-pack policies [--policy-pack-config policies/config/<stack>.json]`."""

import sys
from pathlib import Path

# The rules live in the importable package `policies`, one folder up from this pack.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack

from policies.pack import build_policies

PolicyPack(name="datamesh", policies=build_policies(),
           description="Istio port naming and mesh guardrails for datamesh stacks")
