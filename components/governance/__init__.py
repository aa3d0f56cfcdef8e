"""The governance layer: zero trust, API keys and rate limits, the Anypoint adapter, observability.

Builds on the platform and products layers.
"""
