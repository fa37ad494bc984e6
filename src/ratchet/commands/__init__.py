"""The use-cases behind the faces (``cli.py``, ``mcp_server.py``): each a module.

try (``referee``), ``doctor``, calibrate and ablate (``analysis``), init (``scaffold``,
``agent_glue``), ``demo``, ``review``, ``probe``.
"""
