"""The public API: what ``ratchet`` and its extension points export, pinned (httpx's test is the model).

``ratchet.verdict`` is pinned too: the loop, the reports and the commands import it from there.
A name added to or dropped from ``__all__`` is a change users see: this test makes it deliberate.
"""

from __future__ import annotations

import types

import pytest

import ratchet
import ratchet.events
import ratchet.executors
import ratchet.proposers
import ratchet.testing
import ratchet.verdict

PUBLIC = {
    ratchet: [
        "Config", "ConfigError", "Executor", "Experiment", "GuardResult", "Ledger", "LocalExecutor", "Loop", "Outcome",
        "Proposal", "ProposalContext", "Proposer", "ProposerError", "RunError", "RunObserver", "RunSummary", "Verdict",
        "__version__", "load_config", "parse_config",
    ],
    ratchet.proposers: [
        "BudgetExhausted", "FatalProposerError", "Outcome", "Proposal", "ProposalContext", "Proposer", "ProposerError", "Usage",
        "create_proposer",
    ],
    ratchet.executors: ["CommandSpec", "Executor", "Job", "JobSource", "LocalExecutor", "WorkerLost", "create_executor"],
    ratchet.events: [
        "EXIT_CONFIG", "EXIT_DONE", "EXIT_ERROR", "EXIT_FAILURES", "EXIT_INTERRUPTED", "RunObserver", "RunSummary",
    ],
    ratchet.testing: ["ExecutorContract", "ProposerContract"],
    ratchet.verdict: [
        "Decision", "Judgement", "SampleSource", "VerdictPolicy", "evaluate_guard", "guarded", "holdout_regressed", "improvement",
        "log_scale_for", "measure_pair", "noise_warning", "policy_for", "recommended_min_effect", "redact_for_proposer",
        "relative_change", "relative_gain", "setting_on_scale", "threshold_on_scale",
    ],
}  # fmt: skip


@pytest.mark.parametrize("module", list(PUBLIC), ids=lambda m: m.__name__)
def test_all_is_the_pinned_public_api(module: types.ModuleType) -> None:
    assert sorted(module.__all__) == sorted(PUBLIC[module])


@pytest.mark.parametrize("module", list(PUBLIC), ids=lambda m: m.__name__)
def test_every_exported_name_is_there_and_every_public_name_is_exported(module: types.ModuleType) -> None:
    for name in module.__all__:
        assert hasattr(module, name), name
    # What the package itself defines (not what it imports from elsewhere to do its work) and
    # binds without an underscore is exported: nothing public hides outside __all__.
    public = {
        name for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", "").startswith(module.__name__)
    }  # fmt: skip
    assert public <= set(module.__all__), public - set(module.__all__)


def test_the_version_is_one_string_from_one_place() -> None:
    from ratchet._version import __version__

    assert ratchet.__version__ is __version__ and __version__.count(".") >= 2
