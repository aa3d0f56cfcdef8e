"""datamesh's Pulumi components, one package per layer of the architecture.

Base modules (no Pulumi resources; every layer may import them): ``config``,
``versions``, ``cidr``, ``names``, ``images``, ``ratelimit``, ``inputs``,
``documents``, ``problems``. Layers, each importing only those below it: ``platform`` <
``addons`` < ``products`` < ``governance``.
"""
