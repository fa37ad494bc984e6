"""The Ray executor on the session's loopback cluster: the executor contract, jobs measured in a
copy made from their source, devices, a node lost mid-command, and a missing Ray."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import EXECUTOR_OUTPUT_CAP, BothSandboxings, make_repo, sh
from ray_cluster import LOOPBACK_ENV

from ratchet.config import Config, parse_config
from ratchet.executors import CommandSpec, Job, JobSource, WorkerLost
from ratchet.measure.runner import CommandResult
from ratchet.testing import ExecutorContract

pytestmark = pytest.mark.ray

OUTPUT_CAP = EXECUTOR_OUTPUT_CAP


def _config(executor: str = "", metric: str = 'command = "true"', sandbox: str = "off") -> Config:
    return parse_config(
        f'[scope]\nmutable = ["**"]\n[metric]\n{metric}\ndirection = "minimize"\n'
        f'[proposer]\nkind = "command"\ncommand = "true"\n[sandbox]\nmode = "{sandbox}"\noutput = {OUTPUT_CAP}\n'
        f'[executor]\nkind = "ray"\n{executor}'
    )


def _ray_executor(config: Config, repo_root: Path) -> Any:
    from ratchet.executors.ray import RayExecutor

    return RayExecutor.from_config(config, repo_root)


def node_cache(repo_key: str) -> Path:
    """Where the nodes of the loopback cluster (all on this machine) keep a repository's clones and logs."""
    from ratchet.executors.ray import node_cache

    return node_cache(repo_key)


class TestRayExecutor(BothSandboxings, ExecutorContract):
    @pytest.fixture
    def executor(self, ray_cluster: Any, worktree: Path, sandboxed: bool) -> Iterator[Any]:
        # The containment is rebuilt on the node from [sandbox] (required: bubblewrap there).
        executor = _ray_executor(_config(sandbox="required" if sandboxed else "off"), worktree)
        yield executor
        executor.close()  # joined the session's cluster: leaves it running
        shutil.rmtree(node_cache(executor.repo_key), ignore_errors=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"value.txt": "10\n", "bench/harness.py": "print('harness')\n"})


def _source_job(repo: Path, log_dir: Path, command: str, patch: str | None) -> Job:
    commit = sh(repo, "git", "rev-parse", "HEAD").strip()
    return Job(repo, (CommandSpec("metric", command, 30),), log_dir, source=JobSource(repo, commit, patch))


@pytest.mark.parametrize("sandbox", ["required", "off"])
def test_a_source_job_runs_in_a_patched_copy_and_names_what_it_changed(
    ray_cluster: Any, repo: Path, tmp_path: Path, sandbox: str, request: pytest.FixtureRequest
) -> None:
    if sandbox == "required":
        request.getfixturevalue("sandbox_required")
    (repo / "value.txt").write_text("7\n")
    patch = sh(repo, "git", "diff", "--binary")
    sh(repo, "git", "checkout", "--", "value.txt")
    refs_before = sh(repo, "git", "for-each-ref")
    executor = _ray_executor(_config(sandbox=sandbox), repo)
    try:
        command = "cat value.txt; echo x > written.txt; echo y >> bench/harness.py; pwd"
        (first,) = executor.measure(_source_job(repo, tmp_path / "logs", command, patch))
        assert first.ok, first.tail()
        output = first.read().splitlines()
        assert output[0] == "7"  # the patch applied in the copy
        assert Path(output[-1]) != repo  # ... which is not the driver's checkout
        assert first.stdout_path == tmp_path / "logs" / "metric.stdout"  # logs where the local executor writes them
        assert first.changed == ("bench/harness.py", "written.txt")  # the patch itself is no change of the command's
        assert first.attempt == 1 and first.node.endswith(ray_cluster.head_node_id[:12])
        assert not Path(output[-1]).exists()  # the checkout is removed after the task
        # The same commit again (the champion: no patch): its bundle is not made or put again.
        (second,) = executor.measure(_source_job(repo, tmp_path / "logs2", "cat value.txt", None))
        assert second.read() == "10\n" and second.changed == ()
        assert executor.bundle_puts == 1
        # The user's repository is as it was: no ref left, no file written.
        assert sh(repo, "git", "for-each-ref") == refs_before
        assert sh(repo, "git", "status", "--porcelain") == "" and (repo / "value.txt").read_text() == "10\n"
        # The node keeps its clone of the commit for the next job, and no checkout.
        cache = node_cache(executor.repo_key)
        assert sorted(path.name for path in cache.iterdir() if not path.name.startswith(".")) == [f"{second_commit(repo)}.git"]
    finally:
        executor.close()
        shutil.rmtree(node_cache(executor.repo_key), ignore_errors=True)


def second_commit(repo: Path) -> str:
    return sh(repo, "git", "rev-parse", "HEAD").strip()


def test_two_jobs_at_once_get_different_gpus(ray_cluster: Any, repo: Path, tmp_path: Path) -> None:
    executor = _ray_executor(_config("num_gpus = 1\n"), repo)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    # Each waits (bounded) until both run: the two held their GPUs at the same time.
    command = f'touch {barrier}/$$; i=0; while [ "$(ls {barrier} | wc -l)" -lt 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; echo "$CUDA_VISIBLE_DEVICES"'
    results: dict[int, CommandResult] = {}

    def measure(slot: int) -> None:
        job = Job(tmp_path, (CommandSpec("metric", command, 30),), tmp_path / f"logs-{slot}")
        (results[slot],) = executor.worker(slot).measure(job)

    try:
        threads = [threading.Thread(target=measure, args=(slot,)) for slot in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(os.listdir(barrier)) == 2
        assert sorted(result.devices for result in results.values()) == ["0", "1"]
        assert sorted(result.read().strip() for result in results.values()) == ["0", "1"]  # what the command saw
    finally:
        executor.close()
        shutil.rmtree(node_cache(executor.repo_key), ignore_errors=True)


@pytest.mark.parametrize("retries", [1, 0])
def test_a_pair_stays_on_its_node_and_a_node_lost_mid_command_is_retried_or_lost(ray_cluster: Any, tmp_path: Path, retries: int) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    executor = _ray_executor(_config(f"num_cpus = 2\nretries = {retries}\n"), tmp_path)
    node = ray_cluster.add_node(num_cpus=2)
    # The head's CPUs held, so that the experiment's first job (2 CPUs) can only start on the new node.
    release = tmp_path / "release"

    @ray.remote(num_cpus=2)
    def hold(flag: str, held: str) -> None:
        Path(held).touch()
        for _ in range(600):
            if Path(flag).exists():
                return
            time.sleep(0.1)

    head = NodeAffinitySchedulingStrategy(ray_cluster.head_node_id, soft=False)
    holder = hold.options(scheduling_strategy=head).remote(str(release), str(tmp_path / "held"))
    _wait_for(tmp_path / "held")
    worker = executor.worker(0)
    log_dir = tmp_path / "logs"
    (first,) = worker.measure(Job(tmp_path, (CommandSpec("metric", "echo candidate", 30),), log_dir))
    assert first.ok and first.node.endswith(node.node_id[:12])
    release.touch()
    ray.get(holder)  # the head is free now: the retry may run there
    # The other side of the pair goes to the same node. Its first run starts and waits there; a
    # retry (which sees its mark) ends at once.
    command = f"if [ -e {tmp_path}/started ]; then echo retried; else touch {tmp_path}/started; sleep 20; fi"
    job = Job(tmp_path, (CommandSpec("champion-1", command, 60),), log_dir)
    outcome: dict[str, Any] = {}

    def measure() -> None:
        try:
            outcome["results"] = worker.measure(job)
        except WorkerLost as exc:
            outcome["lost"] = exc

    thread = threading.Thread(target=measure)
    try:
        thread.start()
        _wait_for(tmp_path / "started")
        ray_cluster.remove_node(node)
        thread.join(60)
        assert not thread.is_alive()
        if retries:
            (result,) = outcome["results"]
            assert result.attempt == 2 and result.read() == "retried\n"  # only the retry's result comes back
            assert result.node.endswith(ray_cluster.head_node_id[:12])
        else:
            assert "results" not in outcome
            lost = str(outcome["lost"])
            assert "NodeDiedError" in lost and node.node_id in lost and "champion-1" in lost
    finally:
        release.touch()
        thread.join(60)
        executor.close()
        shutil.rmtree(node_cache(executor.repo_key), ignore_errors=True)  # with the lost run's logs


def test_a_missing_ray_is_one_line(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['ray'] = None\n"
        "from pathlib import Path\n"
        "from ratchet.config import parse_config\n"
        "from ratchet.executors import create_executor\n"
        "from ratchet.state import RunError\n"
        f"config = parse_config({_toml()!r})\n"
        "try:\n    create_executor(config, Path('.'))\nexcept RunError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().count("\n") == 0
    assert "pip install 'ratchet[ray]'" in out.stdout


def test_a_private_cluster_is_started_and_shut_down(tmp_path: Path) -> None:
    # In a process of its own: this one is connected to the session's cluster.
    script = (
        "from pathlib import Path\n"
        "import ray\n"
        "from ratchet.config import parse_config\n"
        "from ratchet.executors import CommandSpec, Job, create_executor\n"
        f"executor = create_executor(parse_config({_toml()!r} + 'num_cpus = 1\\n'), Path.cwd())\n"
        "(result,) = executor.measure(Job(Path.cwd(), (CommandSpec('metric', 'echo private', 30),), Path.cwd() / 'logs'))\n"
        "print(result.read().strip(), result.exit_code, ray.is_initialized())\n"
        "executor.close()\n"
        "print(ray.is_initialized())\n"
        "import shutil; from ratchet.executors.ray import node_cache; shutil.rmtree(node_cache(executor.repo_key))\n"
    )
    env = {**os.environ, **LOOPBACK_ENV}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["private", "0", "True", "False"]


def _toml() -> str:
    return (
        '[scope]\nmutable = ["**"]\n[metric]\ncommand = "true"\ndirection = "minimize"\n'
        '[proposer]\nkind = "command"\ncommand = "true"\n[executor]\nkind = "ray"\n'
    )


def test_trusted_scoring_is_refused(ray_cluster: Any, tmp_path: Path) -> None:
    from ratchet.state import RunError

    config = _config(metric='run = "true"\nscore = "echo 1"\nregex = "(\\\\S+)"')
    with pytest.raises(RunError, match="trusted scoring"):
        _ray_executor(config, tmp_path)


def _wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)

