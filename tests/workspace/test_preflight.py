"""What stops a run before its baseline, found without running any of its commands."""

from __future__ import annotations

from conftest import sandbox_config


def test_run_blockers(number_repo):
    from ratchet.config import load_config
    from ratchet.workspace.preflight import run_blockers

    repo = number_repo(sandbox_config("auto"))
    config = load_config(repo / "ratchet.toml")
    assert run_blockers(config, repo) == []
    typo = config.model_copy(update={"scope": config.scope.model_copy(update={"harness": ["bench.py", "test/**"]})})
    (found,) = run_blockers(typo, repo)
    assert found.what == "harness" and "['test/**'] matches no file committed at HEAD" in found.detail and "harness = []" in found.fix
    nothing = config.model_copy(update={"scope": config.scope.model_copy(update={"harness": [], "mutable": ["nope/**"]})})
    assert [f.what for f in run_blockers(nothing, repo)] == ["scope"]
    (repo / "bench.py").write_text("print('edited')\n")  # uncommitted: doctor's concern, not a blocker
    assert run_blockers(config, repo) == []
