"""The platform layer: network, EKS cluster, IRSA, the load balancer controller, Istio, mesh namespaces.

It knows nothing of data products or governance; ``tests/repo/test_layout.py`` keeps it so.
"""
