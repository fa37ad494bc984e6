"""The verdict: keep or discard, from samples only.

``policies`` are the ways to compare a candidate with its champion; ``stats`` the tests and
estimates behind them; ``effect`` the one meaning of ``min_effect`` (its scale and threshold);
``guards`` the guards' bounds; ``holdout`` the overfitting check and the one redaction for
proposers. Import from here: ``from ratchet.verdict import policy_for, redact_for_proposer``.
"""

from ratchet.verdict.decision import Decision
from ratchet.verdict.effect import (
    log_scale_for,
    noise_warning,
    recommended_min_effect,
    relative_change,
    relative_gain,
    setting_on_scale,
    threshold_on_scale,
)
from ratchet.verdict.guards import evaluate_guard, guarded
from ratchet.verdict.holdout import holdout_regressed, redact_for_proposer
from ratchet.verdict.policies import Judgement, SampleSource, VerdictPolicy, measure_pair, policy_for
from ratchet.verdict.stats import improvement

__all__ = [
    "Decision", "Judgement", "SampleSource", "VerdictPolicy", "evaluate_guard", "guarded", "holdout_regressed", "improvement",
    "log_scale_for", "measure_pair", "noise_warning", "policy_for", "recommended_min_effect", "redact_for_proposer",
    "relative_change", "relative_gain", "setting_on_scale", "threshold_on_scale",
]  # fmt: skip
