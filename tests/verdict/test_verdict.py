"""Trustworthy verdicts in real runs on a noisy metric, with fixed seeds (the statistics alone: test_stats.py,
test_policies.py)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from conftest import NUMBER_CONFIG, Scripted, number, run_cli, sh
from rich.console import Console

from ratchet import Ledger, Loop, Proposal, ProposalContext, Verdict
from ratchet.config import load_config
from ratchet.measure.sandbox import probe
from ratchet.report.terminal import Display
from ratchet.verdict.stats import pocock_threshold


def noisy_bench(counter: Path, sd: float = 1.0) -> str:
    # Each run draws its noise from a counter kept outside the repository: fresh noise every
    # measurement, yet the same sequence on every test run.
    return f"""\
import pathlib, random
counter = pathlib.Path({str(counter)!r})
n = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(n + 1))
value = float(pathlib.Path("value.txt").read_text())
print("metric:", value + random.Random(n).gauss(0, {sd}))
"""


def noisy_repo(number_repo, tmp_path: Path, verdict: str, extra_config: str = "", files: dict | None = None) -> Path:
    noise = tmp_path / "noise"  # the counter's folder: writable in the sandbox
    noise.mkdir(exist_ok=True)
    config = NUMBER_CONFIG.replace("[budget]", f"[verdict]\n{verdict}\n[budget]") + extra_config
    config += f'\n[sandbox]\nwritable = ["{noise}"]\n'
    merged = {"bench.py": noisy_bench(noise / "counter"), "src/notes.txt": "notes\n", **(files or {})}
    return number_repo(config, files=merged)


def note(text: str) -> Proposal:
    """A change that cannot move the metric: a pure-noise candidate."""
    return Proposal(hypothesis=f"note {text}", edits={f"src/note-{text}.txt": f"{text}\n"})


def run(repo: Path, proposals: list, iterations: int | None = None, proposer=None) -> tuple[list, str]:
    buffer = io.StringIO()
    loop = Loop(
        repo, load_config(repo / "ratchet.toml"), proposer=proposer or Scripted(proposals),
        iterations=iterations or len(proposals), observer=Display(Console(file=buffer, width=200)),
    )  # fmt: skip
    loop.run()
    return Ledger(repo / ".ratchet" / "ledger.sqlite").experiments("t"), buffer.getvalue()


# ---------------------------------------------------------------- real runs


def test_sequential_discards_noise_and_keeps_real_improvement(number_repo, tmp_path):
    repo = noisy_repo(number_repo, tmp_path, 'mode = "sequential"')
    experiments, output = run(repo, [note("a"), note("b"), number(6, "value 10 -> 6")])
    assert [e.verdict for e in experiments[1:]] == [Verdict.DISCARD, Verdict.DISCARD, Verdict.KEEP]
    kept = experiments[3]
    assert len(kept.extra["candidate_samples"]) == len(kept.extra["champion_samples"]) >= 3
    assert kept.extra["p_value"] < pocock_threshold(0.05, 10)
    assert "Noise: one measurement varies" in output
    assert "Confirmed: the champion" in output and "95% CI" in output
    ledger = Ledger(repo / ".ratchet" / "ledger.sqlite")
    (confirmation,) = ledger.events("t", "confirmation")
    assert confirmation["ci_low"] > 0  # the gain is real: the whole interval is above zero
    (calibration,) = ledger.events("t", "calibration")
    assert 0.3 < calibration["sd_single"] < 3 and not calibration["deterministic"]


def test_deterministic_metric_needs_one_measurement(number_repo):
    repo = number_repo(NUMBER_CONFIG.replace("[budget]", '[verdict]\nmode = "sequential"\n[budget]'))
    experiments, output = run(repo, [number(9), number(12)])
    assert [e.verdict for e in experiments[1:]] == [Verdict.KEEP, Verdict.DISCARD]
    assert "deterministic" in output
    assert experiments[1].extra["measurements"] == {"candidate": 1, "champion": 0}


def test_repeat_mode_uses_medians(number_repo, tmp_path):
    repo = noisy_repo(number_repo, tmp_path, 'mode = "repeat"\nrepeats = 5\ncalibrate_pairs = 0')
    experiments, _ = run(repo, [number(4)])
    assert experiments[1].verdict is Verdict.KEEP
    assert experiments[1].extra["measurements"] == {"candidate": 5, "champion": 5}
    assert "medians of 5" in experiments[1].reason


def test_holdout_regression_is_flagged_overfit(number_repo, tmp_path):
    holdout = """
[holdout]
command = "{python} -c \\"print(100 - float(open('value.txt').read()))\\""
direction = "minimize"
max_regression = "1%"
"""
    seen: list = []

    def spy(context: ProposalContext) -> Proposal:
        seen.extend(context.history)
        return number(7, "overfits")

    repo = number_repo(NUMBER_CONFIG + holdout.replace("{python}", sys.executable))
    experiments, _ = run(repo, [number(9.95, "tiny"), number(7, "overfits"), spy])
    assert experiments[0].extra["holdout"] == 90.0
    assert experiments[1].verdict is Verdict.KEEP  # holdout 90.05: within 1%
    assert experiments[2].verdict is Verdict.OVERFIT and "holdout got worse" in experiments[2].reason
    assert experiments[3].verdict is Verdict.OVERFIT
    assert sh(repo, "git", "show", "ratchet/t:value.txt").strip() == "9.95"
    # The proposer never saw a holdout value.
    assert seen and all("holdout" not in e.extra for e in seen)
    assert all("93" not in e.reason and "holdout" not in e.reason for e in seen)  # nor its values in reasons
    status = json.loads(run_cli(repo, "status", "--json").stdout)
    assert [h["holdout"] for h in status["holdout_trend"]] == [90.0, pytest.approx(90.05)]
    assert "holdout (champions): 90 → 90.05" in run_cli(repo, "status").stdout

    flagged = number_repo(NUMBER_CONFIG + holdout.replace("{python}", sys.executable) + 'action = "flag"\n', name="flagged")
    experiments, _ = run(flagged, [number(7, "overfits")])
    assert experiments[1].verdict is Verdict.KEEP and experiments[1].extra["overfit"] is True
    assert "FLAGGED overfit" in experiments[1].reason


TRUSTED = r"""
[run]
name = "t"
[scope]
mutable = ["train.py"]
harness = ["score.py"]
[metric]
name = "loss"
run = "{python} train.py"
score = "{python} score.py"
regex = 'loss: (\S+)'
direction = "minimize"
[budget]
iterations = 5
[proposer]
kind = "command"
command = "true"
"""

SCORE = """\
import os, pathlib
print("loss:", float((pathlib.Path(os.environ["RATCHET_CANDIDATE"]) / "out.txt").read_text()))
"""


def train(value: float, extra: str = "") -> Proposal:
    code = f"import pathlib\npathlib.Path('out.txt').write_text('{value}')\n{extra}"
    return Proposal(hypothesis=f"train to {value}", edits={"train.py": code})


def test_trusted_scoring_ignores_fake_lines_and_catches_rewrites(number_repo, tmp_path):
    repo = number_repo(TRUSTED.replace("{python}", sys.executable), files={"train.py": train(10).edits["train.py"], "score.py": SCORE})
    fake_line = train(8, "print('loss: -1000')\n")
    rewrite = train(1, "open('score.py', 'w').write('print(\"loss: -5\")')\n")
    pristine = repo / ".ratchet" / "runs" / "t" / "pristine-harness" / "score.py"
    reach_out = train(1, f"import os\np = {str(pristine)!r}\nos.chmod(p, 0o644)\nopen(p, 'w').write('print(\"loss: -5\")')\n")
    experiments, _ = run(repo, [fake_line, rewrite, reach_out])
    baseline, honest, rewritten, reached = experiments
    assert baseline.metric == 10.0
    assert honest.verdict is Verdict.KEEP and honest.metric == 8.0  # the score step's number, not the fake line
    assert rewritten.verdict is Verdict.TAMPERED and "score.py" in rewritten.reason
    if probe().usable:  # the sandbox refuses the write itself
        assert reached.verdict is Verdict.CRASH and "Read-only file system" in reached.output_tail
    else:
        assert reached.verdict is Verdict.TAMPERED and "pristine harness copy" in reached.reason
    assert "loss: -5" not in pristine.read_text()  # rebuilt


def test_confirmation_and_ablation_from_the_cli(number_repo, tmp_path):
    # calibrate_pairs = 3: the A/A count this test's noise draws were chosen with (the default is now up to 10).
    repo = noisy_repo(number_repo, tmp_path, 'mode = "single"\ncalibrate_pairs = 3', extra_config="")
    proposals = [number(5, "real: value 10 -> 5")] + [note(str(i)) for i in range(6)]
    experiments, output = run(repo, proposals)
    kept = [e for e in experiments if e.verdict is Verdict.KEEP]
    lucky = [e for e in kept if e.hypothesis.startswith("note")]
    assert kept[0].hypothesis.startswith("real") and lucky, "with single measurements some noise gets kept"
    assert "95% CI" in output

    result = run_cli(repo, "ablate", timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Kept but not contributing:" in result.stdout
    not_contributing = result.stdout.split("Kept but not contributing:")[1]
    for e in lucky:
        assert f"#{e.id}" in not_contributing
    assert f"#{kept[0].id} " not in not_contributing

    calibrate = run_cli(repo, "calibrate", "--pairs", "6", "--effect", "2", timeout=300)
    assert calibrate.returncode == 0, calibrate.stderr
    assert "noise: one measurement sd" in calibrate.stdout
    assert "recommended: min_effect = " in calibrate.stdout and "to detect 2" in calibrate.stdout
    status = json.loads(run_cli(repo, "status", "--json").stdout)
    assert status["run"] == "t"


def test_guard_failure_rework_lets_the_proposer_mend(number_repo):
    from ratchet.proposers import create_proposer

    script = (
        'if [ -n "$RATCHET_REWORK" ]; then echo 2 > value.txt; echo "keep it positive" > "$RATCHET_HYPOTHESIS_FILE";\n'
        'else echo -1 > value.txt; echo "go negative" > "$RATCHET_HYPOTHESIS_FILE"; fi\n'
    )
    guard = """
[[guards]]
name = "positive"
command = "{python} -c \\"import sys; v = float(open('value.txt').read()); print('value', v); sys.exit(v <= 0)\\""
"""
    config = (
        NUMBER_CONFIG.replace("[budget]", "[verdict]\nrework = 1\n[budget]")
        .replace('command = "true"', 'command = "sh propose.sh"')
        + guard.replace("{python}", sys.executable)
    )

    def loop_on(repo: Path) -> list:
        proposer = create_proposer(load_config(repo / "ratchet.toml"), root=repo)
        return run(repo, [], iterations=1, proposer=proposer)[0]

    repo = number_repo(config, files={"propose.sh": script})
    mended = loop_on(repo)[1]
    assert mended.verdict is Verdict.KEEP, mended.reason
    assert mended.hypothesis == "go negative (mended: keep it positive)"
    assert mended.extra["rework"] == [{"try": 1, "hypothesis": "keep it positive", "result": "keep"}]
    assert sh(repo, "git", "show", "ratchet/t:value.txt").strip() == "2"
    brief = (Path(mended.log_dir) / "rework-1" / "brief.md").read_text()
    assert "guard positive failed: exit 1" in brief and "value -1.0" in brief

    plain = number_repo(config.replace("rework = 1", "rework = 0"), files={"propose.sh": script}, name="plain")
    discarded = loop_on(plain)[1]
    assert discarded.verdict is Verdict.DISCARD and "positive" in discarded.reason
