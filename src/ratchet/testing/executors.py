"""The executor conformance suite (being written)."""


class ExecutorContract:
    """Tests every executor must pass."""
