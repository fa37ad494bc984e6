"""The proposer conformance suite (being written)."""


class ProposerContract:
    """Tests every proposer must pass."""
