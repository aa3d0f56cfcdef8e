"""``python -m tools.local_engine``: the real Pulumi engine on a local control plane (docs/operating.md, "The local engine").

Its Go programs are in ``go/``: one module per group of binaries, each pinning exact versions.
"""
