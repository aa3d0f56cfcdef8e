"""The data-products layer: declarations (``products/*.yaml``), the DataProduct component, the catalog.

Builds on the platform layer; knows nothing of governance.
"""
