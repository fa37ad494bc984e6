"""The noise: an A/A calibration (the champion against itself) that tells how much one comparison
varies, and at the end the confirmation race (the final champion against the baseline, in
interleaved pairs, with a 95% confidence interval). Both draw pairs the way the verdict does."""

from __future__ import annotations

import math
import random
from typing import Any

from ratchet.config import Config
from ratchet.executors import JobSource
from ratchet.executors.sampler import MeasurementFailed, Sampler
from ratchet.experiment import Verdict
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
from ratchet.verdict.effect import detectable_warning
from ratchet.verdict.error_control import DEFAULT_HORIZON, Past, e_lond_level
from ratchet.verdict.stats import Noise, confidence_interval, pooled_noise, precise
from ratchet.workspace.worktree import reference_checkout


def know_noise(parts: Parts, ledger: Ledger, measurement: Measurement, state: RunState, interrupts: Interrupts) -> None:
    """Use this machine's last A/A calibration, or make one."""
    calibrations = ledger.events(parts.run_name, "calibration")
    if calibrations and calibrations[-1].get("fingerprint") == parts.fingerprint:
        last = calibrations[-1]
        if samples := last.get("samples"):
            parts.learn_noise([*samples[0], *samples[1]])
        # The champion samples of the comparisons made since on this machine feed the estimate too.
        for experiment in state.history:
            if experiment.hardware == parts.fingerprint and len(experiment.extra.get("champion_samples") or []) > 1:
                parts.learn_noise(list(experiment.extra["champion_samples"]))
        apply_noise(parts, noise_from(last), quiet=True)
    else:
        calibrate(parts, ledger, measurement, state, interrupts, after=len(state.history) - 1)


def calibrate(parts: Parts, ledger: Ledger, measurement: Measurement, state: RunState, interrupts: Interrupts, after: int) -> None:
    """A/A: the champion measured against itself, to estimate the noise of one comparison.

    Pairs go on until the estimate's 95% interval is within +-30% of it, at most ``calibrate_pairs``.
    Under mode auto a metric without spread costs one measurement: the first is compared with the
    champion's recorded score of this machine, and equal means deterministic (no further A/A).
    """
    verdict = parts.config.verdict
    auto = verdict.mode == "auto"
    pairs = verdict.calibrate_pairs
    if pairs < (1 if auto else 2) or (auto and parts.deterministic):
        return  # auto on a deterministic metric pays no further A/A
    sampler = measurement.sampler(state, parts.run_dir / "logs" / f"calibration-{after:04d}", interrupts)
    first: list[float] = []
    second: list[float] = []
    # The recorded score is a measurement of the champion on this machine: an exact repeat of it
    # says "no spread" for the price of one measurement.
    probe = state.champion_metric if auto and verdict.deterministic != "no" and state.champion_fingerprint == parts.fingerprint else None
    parts.observer.message(f"Measuring the noise: the champion against itself, up to {pairs} pairs…")
    measured = 0
    deterministic = False
    try:
        pending: float | None = None
        if probe is not None and math.isfinite(probe):
            pending = sampler.champion()
            measured += 1
            if pending == probe:
                first, second, deterministic = [probe], [pending], True
        while not deterministic and len(first) < pairs:
            if pending is None:
                pending = sampler.champion()
                measured += 1
            first.append(pending)
            second.append(sampler.champion())
            measured += 1
            pending = None
            values = first + second
            if verdict.deterministic != "no" and len(first) >= (1 if auto else 2) and all(x == values[0] for x in values):
                break  # no spread at all: deterministic
            if len(set(values)) > 1 and precise(pooled_noise([values], log_scale_for(verdict, values))):
                break
    except MeasurementFailed as exc:
        parts.observer.warning(f"noise calibration failed: {exc.failure.reason}")
        return
    log_scale = log_scale_for(verdict, first + second)
    noise = pooled_noise([first + second], log_scale)
    parts.learn_noise(first + second)
    data = {
        "pairs": noise.pairs, "sd_single": noise.sd_single, "sd_pair": noise.sd_pair, "mean": noise.mean,
        "relative": noise.relative, "deterministic": noise.deterministic, "scale": "log" if log_scale else "absolute",
        "sd_single_low": noise.sd_low, "sd_single_high": noise.sd_high, "df": noise.df, "measured": measured,
        "samples": [first, second], "fingerprint": parts.fingerprint,
    }  # fmt: skip
    ledger.add_event(parts.run_name, "calibration", data, after_experiment=after)
    apply_noise(parts, noise)


def apply_noise(parts: Parts, noise: Noise, quiet: bool = False) -> None:
    """What the noise changes: a deterministic metric is decided by one measurement; a min_effect
    below the noise floor (under auto: below what the run can resolve) is warned about."""
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
    parts.observer.message(describe_noise(noise, parts.config.metric.name))
    if verdict.mode == "auto" and verdict.run_level:
        level = e_lond_level(verdict.fdr, Past(0, 0, max(1, parts.budget.iterations or DEFAULT_HORIZON)))
        warning = detectable_warning(verdict, noise, parts.config.metric.name, level)
    else:
        warning = noise_warning(verdict, noise, parts.config.metric.name)
    if warning:
        parts.observer.warning(warning)


def describe_noise(noise: Noise, metric_name: str) -> str:
    """The noise estimate in one line, with its 95% interval where it has one."""
    scale = "log-ratio" if noise.log_scale else metric_name
    unit = f" ({noise.relative:.2%} of the metric)" if noise.relative is not None else ""
    interval = (
        f" (95% CI {noise.sd_low:.4g} .. {noise.sd_high:.4g}, {noise.df} degrees of freedom)"
        if noise.sd_low is not None and noise.sd_high is not None else ""
    )  # fmt: skip
    return f"Noise: one measurement varies by sd {noise.sd_single:.4g} {scale}{unit}{interval}; one comparison by {noise.sd_pair:.4g}."


def confirm(parts: Parts, ledger: Ledger, measurement: Measurement, state: RunState, interrupts: Interrupts) -> None:
    """The final champion against the original baseline, in interleaved pairs, with a 95% CI."""
    pairs = parts.config.verdict.confirm_pairs
    if parts.noise is not None and not parts.deterministic:
        # The run's estimate: the A/A check and every champion re-measurement since.
        parts.observer.message(describe_noise(parts.noise, parts.config.metric.name).replace("Noise:", "Noise over the run:", 1))
    if pairs < 1 or state.champion == state.base_commit:
        return
    if parts.deterministic:
        pairs = 1  # the same code gives the same number: one pair is the whole truth
    baseline_folder = parts.state_dir / "worktrees" / f"{parts.run_name}.baseline"
    reference_checkout(parts.repo_root, baseline_folder, state.base_commit)
    log_dir = parts.run_dir / "logs" / "confirmation"
    sampler = measurement.sampler(state, log_dir, interrupts)
    race = Sampler(
        config=parts.config, executor=measurement.executor, candidate_dir=sampler.champion_dir(), champion_dir=lambda: baseline_folder,
        log_dir=log_dir, stored_champion=state.baseline_metric, should_abandon=lambda: interrupts.abandon,
        after_candidate=lambda: None, pristine=sampler.pristine,
        sources={"candidate": JobSource(parts.repo_root, state.champion), "champion": JobSource(parts.repo_root, state.base_commit)}
        if measurement.executor.measures_copies else None,
    )  # fmt: skip
    parts.observer.message(f"Confirmation race: the champion against the baseline, {pairs} pair{'s' if pairs > 1 else ''}…")
    rng = random.Random(f"{parts.config.verdict.seed}/{parts.run_name}/confirm")
    champion_samples: list[float] = []
    baseline_samples: list[float] = []
    baseline = next((e for e in state.history if e.verdict is Verdict.BASELINE), None)
    try:
        if parts.deterministic and parts.config.verdict.mode == "auto" and baseline is not None and baseline.hardware == parts.fingerprint:
            # Auto, no spread: the baseline's score of this machine is exact; only the champion is measured again.
            baseline_samples.append(state.baseline_metric)
            champion_samples.append(race.candidate())
        for _ in range(pairs - len(champion_samples)):
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
        log_scale=event["scale"] == "log", sd_low=event.get("sd_single_low"), sd_high=event.get("sd_single_high"), df=event.get("df"),
    )  # fmt: skip


