"""Cluster add-ons: what a production EKS cluster runs beside the mesh.

One module per add-on (EKS managed add-ons, metrics-server, node autoscaling,
External Secrets), each a component that declares what it waits for. Add-ons sit on
the platform layer: they may import ``components.platform``, never the
products or governance layers.
"""
