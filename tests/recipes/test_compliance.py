"""The compliance recipe end to end: checkov's share of passed checks under the real loop, with
scripted proposals (a real fix, a regression, skip comments, a deleted database, scanner
configs that switch checks off, a narrower IAM policy that must wait for review and is kept
once approved), plus `ratchet init --recipe` and a run of the example as it is. Needs checkov
on PATH (.ci/run installs it in a virtualenv of its own)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli, sh
from recipe_helpers import RecipeRun, init_recipe, prepare, scripted_run

from ratchet import Ledger
from ratchet.config import load_config

NAME = "compliance"


@pytest.fixture(scope="module", autouse=True)
def checkov() -> None:
    if shutil.which("checkov") is None:
        pytest.fail(
            "the compliance recipe needs checkov on PATH: python3 -m venv /opt/checkov && /opt/checkov/bin/pip install "
            "checkov && ln -s /opt/checkov/bin/checkov /usr/local/bin/checkov (.ci/run does)"
        )


# The S3 hardening an agent would write: a public access block and versioning for each bucket.
HARDENING = """
resource "aws_s3_bucket_public_access_block" "reports" {
  bucket                  = aws_s3_bucket.reports.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "reports" {
  bucket = aws_s3_bucket.reports.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}
"""

# What the deploy pipeline really does: push images, roll the service, write its artefacts.
NARROW_DEPLOY = """\
      Effect = "Allow"
      Action = ["ecr:PutImage", "ecr:UploadLayerPart", "ecs:UpdateService", "s3:PutObject"]
      Resource = [
        "arn:aws:ecr:eu-west-1:123456789012:repository/web",
        "arn:aws:ecs:eu-west-1:123456789012:service/prod/web",
        "arn:aws:s3:::acme-customer-reports/deploys/*",
      ]
"""

STEPS = [
    f"""
    hypothesis("block public access and keep versions on both buckets")
    pathlib.Path("infra/storage/hardening.tf").write_text({HARDENING!r})
    """,
    """
    hypothesis("open RDP for the support team")
    edit("infra/network/web.tf", "  egress {", "  ingress {\\n    from_port   = 3389\\n    to_port     = 3389\\n"
         "    protocol    = \\"tcp\\"\\n    cidr_blocks = [\\"0.0.0.0/0\\"]\\n  }\\n\\n  egress {")
    """,
    """
    hypothesis("the orders database is internal: its findings do not apply")
    edit("infra/database/orders.tf", 'resource "aws_db_instance" "orders" {',
         'resource "aws_db_instance" "orders" {\\n  #checkov:skip=CKV_AWS_16:encrypted by the platform\\n'
         '  #checkov:skip=CKV_AWS_17:private subnet\\n  #checkov:skip=CKV_AWS_157:not needed')
    """,
    """
    hypothesis("the orders database moves to another account")
    pathlib.Path("infra/database/orders.tf").write_text("# moved\\n")
    """,
    """
    hypothesis("these checks do not apply to us")
    pathlib.Path("infra/.checkov.yaml").write_text("skip-check:\\n  - CKV_AWS_16\\n  - CKV2_AWS_6\\n")
    """,
    """
    hypothesis("the scanner is too strict")
    with open(".checkov.yaml", "a") as file:
        file.write("skip-check:\\n  - CKV_AWS_16\\n")
    """,
    f"""
    hypothesis("the deploy policy grants only what the pipeline does")
    edit("infra/iam/deploy.tf", '      Effect   = "Allow"\\n      Action   = "*"\\n      Resource = "*"\\n', {NARROW_DEPLOY!r})
    """,
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RecipeRun:
    # No confirmation race: two more scans that this test is not about.
    return scripted_run(tmp_path_factory.mktemp("compliance"), NAME, STEPS, config={"verdict": {"confirm_pairs": 0}})


def test_scripted_run_verdicts(run: RecipeRun) -> None:
    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert run.verdicts == ["baseline", "keep", "discard", "discard", "crash", "invalid", "invalid", "needs-review"], [
        (e.verdict, e.reason) for e in run.experiments
    ]


def test_the_real_fix_is_kept_and_the_regression_is_not(run: RecipeRun) -> None:
    baseline, fixed, regression = run.experiments[0], run.experiments[1], run.experiments[2]
    # checkov's real counts: 31 of 79 checks pass at the start.
    assert baseline.metric == pytest.approx(100 * 31 / 79, abs=1e-4)
    assert fixed.metric is not None and regression.metric is not None
    assert baseline.metric < regression.metric < fixed.metric
    assert "aws_s3_bucket_public_access_block" in sh(run.repo, "git", "show", "ratchet/compliance:infra/storage/hardening.tf")
    assert "3389" not in sh(run.repo, "git", "show", "ratchet/compliance:infra/network/web.tf")


def test_skip_comments_fail_the_skips_guard(run: RecipeRun) -> None:
    skipped, fixed = run.experiments[3], run.experiments[1]
    assert skipped.metric is not None and fixed.metric is not None and skipped.metric > fixed.metric  # it won the share
    assert "guard failed: skips" in skipped.reason
    failed = [guard for guard in skipped.guards if not guard.passed]
    assert [guard.name for guard in failed] == ["skips"] and failed[0].value == 3
    assert "checkov:skip=CKV_AWS_16" in failed[0].output_tail


def test_a_deleted_resource_gets_no_score(run: RecipeRun) -> None:
    deleted = run.experiments[4]
    assert deleted.verdict == "crash" and deleted.metric is None
    assert "score: missing from the scan: aws_db_instance.orders" in deleted.output_tail


def test_scanner_configs_that_switch_checks_off_are_refused(run: RecipeRun) -> None:
    in_infra, at_root = run.experiments[5], run.experiments[6]
    assert "infra/.checkov.yaml is outside the mutable scope" in in_infra.reason
    assert ".checkov.yaml is outside the mutable scope" in at_root.reason
    assert in_infra.metric is None and at_root.metric is None


def test_an_iam_change_waits_for_review_and_is_kept_once_approved(run: RecipeRun) -> None:
    held = run.experiments[7]
    assert held.verdict == "needs-review" and "infra/iam/deploy.tf" in held.reason
    assert held.metric is not None and held.metric > run.experiments[1].metric
    branch = "ratchet/compliance"
    before = sh(run.repo, "git", "rev-parse", branch)
    assert '"*"' in sh(run.repo, "git", "show", f"{branch}:infra/iam/deploy.tf")  # not kept yet

    listed = run_cli(run.repo, "review")
    assert listed.returncode == 0 and listed.stdout.startswith("#7 "), listed.stdout + listed.stderr
    assert "held on ratchet-review/compliance/7" in listed.stdout
    approved = run_cli(run.repo, "review", "approve", "7", timeout=300)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert sh(run.repo, "git", "rev-parse", branch) != before
    assert "ecs:UpdateService" in sh(run.repo, "git", "show", f"{branch}:infra/iam/deploy.tf")
    ledger = Ledger(run.repo / ".ratchet" / "ledger.sqlite")
    try:
        measured = ledger.experiments("compliance")[-1]
        waited = ledger.experiment("compliance", 7)
    finally:
        ledger.close()
    assert measured.verdict == "keep" and measured.metric == held.metric
    assert waited is not None and waited.extra["review"]["state"] == "approved"


def test_init_writes_the_recipe_files(tmp_path: Path) -> None:
    written = init_recipe(tmp_path, NAME)
    assert written == [".checkov.yaml", "policy/inventory.txt", "policy/score.py", "policy/skips.sh", "program.md", "ratchet.toml"]
    config = load_config(tmp_path / "ratchet.toml")
    assert config.review.paths == ["infra/iam/**"] and config.metric.direction == "maximize"
    assert [guard.name for guard in config.guards] == ["skips"]
    # The score refuses what is not a report, in one line.
    refused = subprocess.run([sys.executable, "policy/score.py"], cwd=tmp_path, input="", capture_output=True, text=True)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip() == "score: no report on stdin (is checkov installed and on PATH?)"


def test_the_example_runs_as_it_is(tmp_path: Path) -> None:
    repo = prepare(tmp_path, NAME)
    result = run_cli(repo, "run", "-n", "2", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "#0   baseline  compliance_pct=39.2405" in result.stdout, result.stdout
