"""The noise: an A/A calibration (the champion against itself) that tells how much one comparison
varies, and at the end the confirmation race (the final champion against the baseline, in
interleaved pairs, with a 95% confidence interval). Both draw pairs the way the verdict does."""

from __future__ import annotations

import random
from typing import Any

from ratchet.config import Config
from ratchet.executors.sampler import MeasurementFailed, Sampler
from ratchet.ledger import Ledger
from ratchet.loop.measurement import Measurement
from ratchet.loop.parts import Parts
from ratchet.loop.state import Interrupts, RunState
from ratchet.verdict import (
    improvement,
    log_scale_for,
    measure_pair,
    noise_warning,
    policy_for,
    relative_gain,
)
from ratchet.verdict.stats import Noise, confidence_interval, estimate_noise
from ratchet.workspace.worktree import reference_checkout


def know_noise(parts: Parts, ledger: Ledger, measurement: Measurement, state: RunState, interrupts: Interrupts) -> None:
    """Use this machine's last A/A calibration, or make one."""
    calibrations = ledger.events(parts.run_name, "calibration")
    if calibrations and calibrations[-1].get("fingerprint") == parts.fingerprint:
        apply_noise(parts, noise_from(calibrations[-1]), quiet=True)
    else:
        calibrate(parts, ledger, measurement, state, interrupts, after=len(state.history) - 1)


def calibrate(parts: Parts, ledger: Ledger, measurement: Measurement, state: RunState, interrupts: Interrupts, after: int) -> None:
    """A/A: the champion measured against itself, to estimate the noise of one comparison."""
    pairs = parts.config.verdict.calibrate_pairs
    if pairs < 2:
        return
    sampler = measurement.sampler(state, parts.run_dir / "logs" / f"calibration-{after:04d}", interrupts)
    first: list[float] = []
    second: list[float] = []
    parts.observer.message(f"Measuring the noise: the champion against itself, {pairs} pairs…")
    try:
        for _ in range(pairs):
            first.append(sampler.champion())
            second.append(sampler.champion())
    except MeasurementFailed as exc:
        parts.observer.warning(f"noise calibration failed: {exc.failure.reason}")
        return
    log_scale = log_scale_for(parts.config.verdict, first + second)
    noise = estimate_noise(first, second, log_scale)
    data = {
        "pairs": noise.pairs, "sd_single": noise.sd_single, "sd_pair": noise.sd_pair, "mean": noise.mean,
        "relative": noise.relative, "deterministic": noise.deterministic, "scale": "log" if log_scale else "absolute",
        "samples": [first, second], "fingerprint": parts.fingerprint,
    }  # fmt: skip
    ledger.add_event(parts.run_name, "calibration", data, after_experiment=after)
    apply_noise(parts, noise)


def apply_noise(parts: Parts, noise: Noise, quiet: bool = False) -> None:
    """What the noise changes: a deterministic metric is decided by one measurement; a min_effect
    below the noise floor is warned about."""
    verdict, direction = parts.config.verdict, parts.config.metric.direction
    parts.deterministic = noise.deterministic if verdict.deterministic == "auto" else verdict.deterministic == "yes"
    if noise.deterministic:
        if not quiet:
            parts.observer.message("Noise: none (the metric is deterministic); one measurement decides.")
        if verdict.deterministic == "auto":
            parts.policy = policy_for(verdict, direction, deterministic=True)
        return
    if verdict.deterministic == "auto" and getattr(parts.policy, "deterministic", False):
        parts.policy = policy_for(verdict, direction)
    if quiet:
        return
    unit = f" ({noise.relative:.2%} of the metric)" if noise.relative is not None else ""
    scale = "log-ratio" if noise.log_scale else parts.config.metric.name
    parts.observer.message(f"Noise: one measurement varies by sd {noise.sd_single:.4g} {scale}{unit}; one comparison by {noise.sd_pair:.4g}.")
    if warning := noise_warning(verdict, noise, parts.config.metric.name):
        parts.observer.warning(warning)


def confirm(parts: Parts, ledger: Ledger, measurement: Measurement, state: RunState, interrupts: Interrupts) -> None:
    """The final champion against the original baseline, in interleaved pairs, with a 95% CI."""
    pairs = parts.config.verdict.confirm_pairs
    if pairs < 1 or state.champion == state.base_commit:
        return
    if parts.deterministic:
        pairs = 1  # the same code gives the same number: one pair is the whole truth
    baseline_folder = parts.state_dir / "worktrees" / f"{parts.run_name}.baseline"
    reference_checkout(parts.repo_root, baseline_folder, state.base_commit)
    log_dir = parts.run_dir / "logs" / "confirmation"
    sampler = measurement.sampler(state, log_dir, interrupts)
    race = Sampler(
        config=parts.config, executor=parts.executor, candidate_dir=sampler.champion_dir(), champion_dir=lambda: baseline_folder,
        log_dir=log_dir, stored_champion=state.baseline_metric, should_abandon=lambda: interrupts.abandon,
        after_candidate=lambda: None, pristine=sampler.pristine,
    )  # fmt: skip
    parts.observer.message(f"Confirmation race: the champion against the baseline, {pairs} pair{'s' if pairs > 1 else ''}…")
    rng = random.Random(f"{parts.config.verdict.seed}/{parts.run_name}/confirm")
    champion_samples: list[float] = []
    baseline_samples: list[float] = []
    try:
        for _ in range(pairs):
            if interrupts.abandon:
                return
            measure_pair(race, rng, champion_samples, baseline_samples)
    except MeasurementFailed as exc:
        parts.observer.warning(f"confirmation race failed: {exc.failure.reason}")
        return
    result = confirmation(parts.config, baseline_samples, champion_samples)
    event = {**result, "fingerprint": parts.fingerprint}
    ledger.add_event(parts.run_name, "confirmation", event, after_experiment=state.history[-1].id)
    parts.observer.message(result["summary"])


def confirmation(config: Config, baseline: list[float], champion: list[float]) -> dict[str, Any]:
    """The total gain of the champion over the baseline with a 95% confidence interval."""
    direction = config.metric.direction
    log_scale = log_scale_for(config.verdict, baseline + champion)
    diffs = [improvement(direction, b, c, log_scale) for b, c in zip(baseline, champion)]
    mean, low, high = confidence_interval(diffs) if len(diffs) > 1 else (diffs[0], diffs[0], diffs[0])
    better = "lower" if direction == "minimize" else "higher"
    if log_scale:
        # As a fraction of the baseline, positive when better.
        gain, low_gain, high_gain = (relative_gain(direction, v) for v in (mean, low, high))
        shown = f"{abs(gain):.2%} {better if gain >= 0 else 'worse'}"
        interval = f" (95% CI {low_gain:+.2%} .. {high_gain:+.2%} better)"
    else:
        gain, low_gain, high_gain = mean, low, high
        shown = f"{abs(gain):.6g} {better if gain >= 0 else 'worse'}"
        interval = f" (95% CI {low_gain:+.6g} .. {high_gain:+.6g} better)"
    # One pair has no spread to build an interval on: say so rather than print a zero-width one.
    shown += interval if len(diffs) > 1 else ""
    pairs = f"over {len(diffs)} pairs" if len(diffs) > 1 else "over 1 pair, no interval"
    summary = f"Confirmed: the champion's {config.metric.name} is {shown} than the baseline's, {pairs}"
    return {
        "pairs": len(diffs), "scale": "log" if log_scale else "absolute", "gain": gain, "ci_low": low_gain,
        "ci_high": high_gain, "baseline_samples": baseline, "champion_samples": champion, "summary": summary,
    }  # fmt: skip


def noise_from(event: dict[str, Any]) -> Noise:
    return Noise(
        pairs=event["pairs"], sd_single=event["sd_single"], sd_pair=event["sd_pair"], mean=event["mean"],
        log_scale=event["scale"] == "log",
    )  # fmt: skip


