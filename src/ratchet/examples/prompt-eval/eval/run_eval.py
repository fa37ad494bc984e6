"""Score the prompt template on a suite of scenarios, asked through an OpenAI-compatible endpoint.

Frozen (harness). For each scenario it renders prompt/triage.md (the scope) by putting the
scenario's ticket where the template says {ticket}, asks the model in eval/model.toml through
the official `openai` SDK (base_url and key from the environment variables model.toml names),
grades the answer with eval/checks.py and prints one line per scenario, then the score:

    python3 -B eval/run_eval.py eval/scenarios.jsonl   ->   ...   eval_score: 68.75

The template is rendered by plain substitution, never by str.format or Jinja: both evaluate
what the template says ({ticket.__class__}, {{ cycler.__init__.__globals__ }}), and this
process holds the API key. Rendered this way the proposer's words are data: they reach the
model, and nothing else.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from checks import grade

HERE = Path(__file__).parent
TEMPLATE = Path("prompt/triage.md")
PARAMS = Path("prompt/params.toml")
PLACEHOLDER = "{ticket}"


class EvalError(Exception):
    """One line on stderr and exit 1: what is wrong, where."""


def load_scenarios(path: Path) -> list[dict[str, Any]]:
    scenarios = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            scenario = json.loads(line)
        except ValueError as exc:
            raise EvalError(f"{path}:{number}: not JSON: {exc}") from None
        if not isinstance(scenario, dict) or not {"id", "ticket", "checks"} <= scenario.keys():
            raise EvalError(f"{path}:{number}: a scenario needs id, ticket and checks")
        scenarios.append(scenario)
    if not scenarios:
        raise EvalError(f"{path}: no scenarios")
    return scenarios


def load_prompt() -> tuple[str, dict[str, Any]]:
    template = TEMPLATE.read_text(encoding="utf-8")
    if PLACEHOLDER not in template:
        raise EvalError(f"{TEMPLATE} has no {PLACEHOLDER}: the model would never see the ticket")
    params = tomllib.loads(PARAMS.read_text(encoding="utf-8"))
    temperature, max_tokens = params.get("temperature", 0.0), params.get("max_tokens", 200)
    if not (isinstance(temperature, (int, float)) and 0 <= temperature <= 2):
        raise EvalError(f"{PARAMS}: temperature must be a number from 0 to 2, not {temperature!r}")
    if not (isinstance(max_tokens, int) and 1 <= max_tokens <= 4096):
        raise EvalError(f"{PARAMS}: max_tokens must be a whole number from 1 to 4096, not {max_tokens!r}")
    return template, {"temperature": float(temperature), "max_tokens": max_tokens}


def client(settings: dict[str, Any]) -> tuple[Any, str]:
    """The SDK's client for the endpoint, and the endpoint's name for messages."""
    key_env, base_env = settings["api_key_env"], settings["base_url_env"]
    key = os.environ.get(key_env)
    if not key:
        raise EvalError(
            f"{key_env} is not set in the measurement's environment: export it before `ratchet run`, "
            f"and list it in [sandbox] env of ratchet.eval.toml (a local server that needs no key: set it to any text)"
        )
    base_url = os.environ.get(base_env) or None
    from openai import OpenAI  # imported here: a missing key is reported without the import's second

    sdk = OpenAI(api_key=key, base_url=base_url, timeout=settings["timeout_s"], max_retries=settings["max_retries"])
    return sdk, base_url or "api.openai.com"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: run_eval.py eval/scenarios.jsonl", file=sys.stderr)
        return 2
    settings = tomllib.loads((HERE / "model.toml").read_text(encoding="utf-8"))
    try:
        scenarios = load_scenarios(Path(argv[1]))
        template, params = load_prompt()
        sdk, where = client(settings)
        import openai  # loaded by client() already; named here for its exceptions
        # Hosted APIs take max_completion_tokens; local servers (vLLM, llama.cpp) know max_tokens.
        limit = "max_tokens" if where != "api.openai.com" else "max_completion_tokens"

        def ask(scenario: dict[str, Any]) -> str:
            prompt = template.replace(PLACEHOLDER, scenario["ticket"])
            response = sdk.chat.completions.create(
                model=settings["model"], messages=[{"role": "user", "content": prompt}],
                temperature=params["temperature"], **{limit: params["max_tokens"]},
            )  # fmt: skip
            return (response.choices[0].message.content or "") if response.choices else ""

        try:
            with ThreadPoolExecutor(max_workers=settings["concurrency"]) as pool:
                answers = list(pool.map(ask, scenarios))
        except openai.AuthenticationError:
            raise EvalError(f"{where} rejected the key in {settings['api_key_env']}") from None
        except openai.APIError as exc:
            raise EvalError(f"the endpoint {where} failed: {exc}") from None
    except EvalError as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 1
    points = total = 0
    for scenario, answer in zip(scenarios, answers):
        results = grade(answer, scenario["checks"])
        points += sum(passed for _, passed in results)
        total += len(results)
        failed = [what for what, passed in results if not passed]
        print(f"{scenario['id']}: {len(results) - len(failed)}/{len(results)}" + (f"  failed: {'; '.join(failed)}" if failed else ""))
    print(f"eval_score: {100 * points / total:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
