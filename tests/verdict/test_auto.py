"""Mode auto, the default: the A/A check picks one measurement or the powered sequential test; the
futility boundary keeps power; run-level error control (e-LOND) bounds the share of false keeps;
the noise estimate comes with an interval that covers the truth. Simulations are pure Python with
fixed seeds; two real runs check the loop's wiring."""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path

import pytest
from conftest import NUMBER_CONFIG, number
from pydantic import ValidationError
from test_policies import Synthetic
from test_verdict import noisy_repo, note, run

from ratchet import Ledger, Verdict
from ratchet.config import Effect, VerdictSection, parse_config
from ratchet.verdict import policy_for
from ratchet.verdict.effect import detectable_warning
from ratchet.verdict.error_control import Past, e_lond_level, gamma
from ratchet.verdict.policies import PoweredSequential, SequentialPairs
from ratchet.verdict.stats import Noise, pooled_noise, powered_keep_rate, powered_threshold, precise

SD_SINGLE = 2**-0.5  # one paired difference has sd 1: effects below are in its units


# ---------------------------------------------------------------- the configuration


def test_auto_is_the_default_and_init_writes_it():
    section = VerdictSection()
    assert section.mode == "auto" and section.run_level and section.fdr == 0.1 and section.max_pairs_cap == 30
    assert section.calibrate_pairs == 10
    assert not VerdictSection(mode="sequential").run_level and VerdictSection(mode="sequential", error_control="run").run_level
    assert not VerdictSection(error_control="candidate").run_level
    with pytest.raises(ValidationError, match="needs a sequential test"):
        VerdictSection(mode="single", error_control="run")
    with pytest.raises(ValidationError, match="max_pairs_cap"):
        VerdictSection(max_pairs=20, max_pairs_cap=15)
    template = Path(__file__).parents[2] / "src" / "ratchet" / "templates" / "ratchet.toml"
    config = parse_config(template.read_text().replace("{run_name}", "r"))
    assert config.verdict.mode == "auto" and 'mode = "auto"' in template.read_text()
    assert isinstance(policy_for(VerdictSection(), "minimize"), PoweredSequential)


# ---------------------------------------------------------------- the futility boundary keeps power


def test_the_powered_test_keeps_a_one_sigma_candidate_at_80_percent():
    """The stated rates (README): at alpha 0.05, a candidate 1 sd above min_effect is kept >= 80%,
    a no-better one at most alpha and stopped in about 4 pairs; a harmful one in about 3."""
    section = VerdictSection(error_control="candidate")
    policy = PoweredSequential(section, "minimize")
    rng = random.Random(13)
    real = [policy.judge(Synthetic(rng, 1.0, SD_SINGLE), rng) for _ in range(1500)]
    kept = sum(j.decision.verdict is Verdict.KEEP for j in real) / len(real)
    assert kept >= 0.8  # simulated 0.856 (sd of this estimate 0.009)
    null = [policy.judge(Synthetic(rng, 0.0, SD_SINGLE), rng) for _ in range(2000)]
    assert sum(j.decision.verdict is Verdict.KEEP for j in null) / len(null) <= 0.06
    assert statistics.fmean(len(j.candidate) for j in null) <= 5.0  # stops in a few pairs
    harmful = [policy.judge(Synthetic(rng, -1.0, SD_SINGLE), rng) for _ in range(300)]
    assert statistics.fmean(len(j.candidate) for j in harmful) <= 3.5
    assert max(len(j.candidate) for j in real) <= section.max_pairs_cap and max(len(j.candidate) for j in real) > section.max_pairs
    # Today's futility (discard at a mean at or below min_effect) throws more of that power away.
    today = SequentialPairs(VerdictSection(mode="sequential"), "minimize")
    old = [today.judge(Synthetic(rng, 1.0, SD_SINGLE), rng).decision.verdict for _ in range(1500)]
    assert old.count(Verdict.KEEP) / len(old) < kept


def test_the_powered_threshold_is_simulated_for_the_whole_procedure():
    threshold = powered_threshold(0.05, 10, 30)
    assert 0.005 < threshold < 0.05  # many looks: stricter than one test at 0.05
    keep_null, pairs_null = powered_keep_rate(0.0, 0.05, 10, 30, sims=20_000, seed=3)
    assert keep_null == pytest.approx(0.05, abs=0.006) and pairs_null < 5
    # A level too small to read from the simulated nulls: Bonferroni over the looks.
    assert powered_threshold(1e-6, 10, 30) == pytest.approx(1e-6 / 28)


# ---------------------------------------------------------------- run-level error control


def test_e_lond_levels():
    assert sum(gamma(t, 100) for t in range(1, 200_001)) == pytest.approx(1.0, abs=1e-3)
    assert e_lond_level(0.1, Past(0, 0, 100)) == pytest.approx(0.1 * 0.009)
    assert e_lond_level(0.1, Past(10, 3, 100)) == pytest.approx(4 * e_lond_level(0.1, Past(10, 0, 100)))
    judged = PoweredSequential(VerdictSection(), "minimize").judge(Synthetic(random.Random(1), 3.0, SD_SINGLE), random.Random(2), Past(0, 0, 100))
    shown = judged.to_json()
    assert judged.decision.verdict is Verdict.KEEP and shown["error_control"] == "run"
    assert shown["test_level"] == pytest.approx(9e-4) and shown["e_value"] == pytest.approx(1 / 9e-4)
    candidate = PoweredSequential(VerdictSection(error_control="candidate"), "minimize")
    assert candidate.judge(Synthetic(random.Random(1), 3.0, SD_SINGLE), random.Random(2), Past(0, 0, 100)).level == 0.05


def test_run_level_control_keeps_the_share_of_false_keeps_below_fdr():
    """The issue's mix (70% null, 15% harmful at -1 sd, 15% real at +1 or +2 sd), 60 runs of 60
    candidates, each judged by the policy at e-LOND's level: the mean FDP stays below fdr."""
    policy = PoweredSequential(VerdictSection(), "minimize")
    rng = random.Random(2026)
    fdps, powers = [], []
    for _ in range(60):
        keeps = false = real = real_kept = 0
        for t in range(60):
            u = rng.random()
            effect = 0.0 if u < 0.7 else -1.0 if u < 0.85 else 1.0 if u < 0.925 else 2.0
            kept = policy.judge(Synthetic(rng, effect, SD_SINGLE), rng, Past(t, keeps, 60)).decision.verdict is Verdict.KEEP
            keeps += kept
            false += kept and effect <= 0
            real += effect > 0
            real_kept += kept and effect > 0
        fdps.append(false / max(keeps, 1))
        powers.append(real_kept / max(real, 1))
    assert statistics.fmean(fdps) <= 0.1
    assert statistics.fmean(powers) >= 0.7


# ---------------------------------------------------------------- the noise estimate


def test_the_noise_interval_covers_the_true_noise():
    """An A/A check of 10 pairs plus the champion samples of a few comparisons, 1000 times: the 95%
    interval of sd_single holds the true sd in >= 90% of runs."""
    rng = random.Random(5)
    covered = 0
    for _ in range(1000):
        groups = [[100 + rng.gauss(0, 0.4) for _ in range(20)]]
        groups += [[80 + rng.gauss(0, 0.4) for _ in range(rng.randint(3, 8))] for _ in range(rng.randint(0, 5))]
        noise = pooled_noise(groups, log_scale=False)
        assert noise.sd_low is not None and noise.sd_high is not None
        covered += noise.sd_low <= 0.4 <= noise.sd_high
    assert covered / 1000 >= 0.9
    # Precision grows with degrees of freedom: 20 values are not within +-30%, 120 are.
    few = pooled_noise([[rng.gauss(0, 1) for _ in range(20)]], False)
    many = pooled_noise([[rng.gauss(0, 1) for _ in range(20)] for _ in range(6)], False)
    assert not precise(few) and precise(many) and many.df == 114
    assert pooled_noise([[3.0, 3.0]], False).deterministic and precise(pooled_noise([[3.0, 3.0]], False))


def test_auto_says_what_the_run_can_detect():
    noise = Noise(pairs=10, sd_single=0.05, sd_pair=0.05 * math.sqrt(2), mean=2.0, log_scale=True)
    warning = detectable_warning(VerdictSection(), noise, "seconds", level=0.001)
    assert warning is not None and "seconds (" in warning and "%) with 80% power at level 0.001" in warning
    assert detectable_warning(VerdictSection(min_effect=Effect(value=50, relative=True)), noise, "seconds") is None


# ---------------------------------------------------------------- real runs


def counting_bench(counter: Path) -> str:
    """The number target's metric (deterministic), counting how often it runs."""
    return f"""\
import pathlib
counter = pathlib.Path({str(counter)!r})
counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))
print("metric:", float(pathlib.Path("value.txt").read_text()))
"""


def test_auto_judges_a_constant_metric_on_one_measurement(number_repo, tmp_path):
    counter_dir = tmp_path / "count"
    counter_dir.mkdir()
    config = NUMBER_CONFIG.replace("[budget]", '[verdict]\nconfirm_pairs = 5\n[budget]') + f'\n[sandbox]\nwritable = ["{counter_dir}"]\n'
    repo = number_repo(config, files={"bench.py": counting_bench(counter_dir / "n")})
    experiments, output = run(repo, [number(9), number(12), number(7)])
    assert [e.verdict for e in experiments[1:]] == [Verdict.KEEP, Verdict.DISCARD, Verdict.KEEP]
    assert "deterministic" in output and "Confirmed: the champion" in output
    assert all(e.extra["measurements"] == {"candidate": 1, "champion": 0} for e in experiments[1:])
    runs = int((counter_dir / "n").read_text())
    assert runs - 1 - 3 <= 2  # the baseline, one per candidate, and at most 2 more (A/A and confirmation)
    (calibration,) = Ledger(repo / ".ratchet" / "ledger.sqlite").events("t", "calibration")
    assert calibration["deterministic"] and calibration["measured"] == 1


def test_auto_judges_a_noisy_metric_sequentially_at_the_run_level(number_repo, tmp_path):
    repo = noisy_repo(number_repo, tmp_path, "min_effect = 0")
    experiments, output = run(repo, [note("a"), number(4, "value 10 -> 4")])
    assert [e.verdict for e in experiments[1:]] == [Verdict.DISCARD, Verdict.KEEP]
    for e in experiments[1:]:
        assert e.extra["error_control"] == "run" and e.extra["tests"] == 1 and e.extra["fdr_horizon"] == 2  # the run's iteration budget
        assert len(e.extra["champion_samples"]) >= 3 and 0 < e.extra["test_level"] < 0.05
    # e-LOND: the second test's level is the first's (both before any keep, within the horizon).
    assert experiments[2].extra["test_level"] == pytest.approx(experiments[1].extra["test_level"])
    assert "95% CI" in output and "Noise over the run" in output
    (calibration,) = Ledger(repo / ".ratchet" / "ledger.sqlite").events("t", "calibration")
    assert not calibration["deterministic"] and calibration["sd_single_low"] < calibration["sd_single"] < calibration["sd_single_high"]
    assert experiments[2].extra["noise_estimate"]["df"] > calibration["df"]  # champion samples fed it
