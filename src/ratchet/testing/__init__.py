"""Conformance suites that every proposer and executor passes, built-in or yours (Optuna's
``optuna.testing`` is the model).

Subclass one in your own tests and give it a fixture that builds your implementation::

    from ratchet.testing import ProposerContract

    class TestMyProposer(ProposerContract):
        @pytest.fixture
        def proposer(self, ...): ...

pytest then runs every test of the contract against it (see each class for its fixtures).
"""

from ratchet.testing.executors import ExecutorContract
from ratchet.testing.proposers import ProposerContract

__all__ = ["ExecutorContract", "ProposerContract"]
