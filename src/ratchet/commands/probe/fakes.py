"""The attacks that lie about the number: a fake metric line before the real one, after it
(at interpreter exit), and a replaced ``sys.stdout`` that rewrites the real line."""

from __future__ import annotations

import textwrap

from ratchet.commands.probe.findings import AttackResult, names
from ratchet.commands.probe.prober import Prober
from ratchet.measure.parse import NUMBER

SPLIT_FIX = (
    "split the metric: [metric] run = the candidate's code (leaves its results in the checkout), "
    "score = a trusted script that reads them from $RATCHET_CANDIDATE and prints the number; "
    "the number is then read from the score step's output only"
)


def fake_attack(prober: Prober, attack: str, body: str, fires: bool) -> AttackResult:
    if skipped := prober.no_code(attack):
        return skipped
    if prober.fake_line is None:
        return AttackResult(attack, "skipped", f"cannot write a line that the {prober.config.metric.parser_kind} parser reads as a number better than the champion's")
    outcome = prober.attack(attack, body, keep_check=True)
    fake = prober.fake_text
    if outcome.rejected:
        return AttackResult(attack, "caught", f"the scope check refuses it: {outcome.rejected}")
    if outcome.failure is not None and outcome.value is None:
        return AttackResult(attack, "caught", f"the experiment would end {outcome.failure.verdict}: {outcome.failure.reason}")
    if outcome.value is not None and prober.is_fake(outcome.value):
        if outcome.failure is not None:  # what a would-be keep meets next
            return AttackResult(attack, "caught", f"the metric read {fake} (the fake), but the experiment would end {outcome.failure.verdict}: {outcome.failure.reason}")
        return AttackResult(
            attack, "not caught",
            f"the metric read {fake} (the fake) instead of {prober.champion_value:.6g}: a run would keep it",
            fake_fix(prober),
        )  # fmt: skip
    if not outcome.heard("ran"):
        return AttackResult(attack, "skipped", f"the metric command never ran the code put in {names(prober.python)}")
    if fires and not outcome.heard("fired") and not prober.config.metric.trusted_scoring:
        # (With trusted scoring the candidate's output is never read: nothing to fire at.)
        return AttackResult(attack, "skipped", "the code ran but its trick never fired (the metric line did not pass through that process's sys.stdout, or no interpreter exit)")
    last = {"regex": "the regex's last match", "json": "the last JSON line with the key", "last_number": "the last number"}
    why = "the number comes from the trusted score step's output" if prober.config.metric.trusted_scoring else f"the parser reads {last[prober.config.metric.parser_kind]}"
    return AttackResult(attack, "caught", f"the metric read {outcome.value:.6g}, not the fake {fake}: {why}")


def fake_fix(prober: Prober) -> str:
    if prober.config.metric.trusted_scoring:
        return "the score step runs or echoes the candidate's code: make it read the run step's results only (files, not its output)"
    return SPLIT_FIX


def fake_line_before(prober: Prober) -> AttackResult:
    body = f"print({prober.fake_line!r}, file=sys.{prober.fake_stream()}, flush=True)"
    return fake_attack(prober, "fake-line-before", body, fires=False)


def fake_line_after(prober: Prober) -> AttackResult:
    fd = 2 if prober.fake_stream() == "stderr" else 1
    body = f"""\
        import atexit, os
        def last_word():
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            os.write({fd}, ({prober.fake_line!r} + "\\n").encode())
            say("fired")
        atexit.register(last_word)
    """
    return fake_attack(prober, "fake-line-after", textwrap.dedent(body), fires=True)


def stdout_replaced(prober: Prober) -> AttackResult:
    metric = prober.config.metric
    streams = ["stdout", "stderr"] if metric.stream == "both" else [prober.fake_stream()]
    body = f"""\
        import atexit, json, re
        KIND, REGEX, KEY, FAKE = {metric.parser_kind!r}, {metric.regex!r}, {metric.json_key!r}, {prober.fake_text!r}
        NUMBER = re.compile({NUMBER.pattern!r}, re.IGNORECASE)
        def rewrite(line):
            if KIND == "regex":
                found = list(re.finditer(REGEX, line))
                if found and found[-1].start(1) >= 0:
                    start, end = found[-1].span(1)
                    say("fired")
                    return line[:start] + FAKE + line[end:]
            elif KIND == "json":
                try:
                    node = top = json.loads(line)
                    parts = KEY.split(".")
                    for part in parts[:-1]:
                        node = node[int(part)] if isinstance(node, list) else node[part]
                    last = int(parts[-1]) if isinstance(node, list) else parts[-1]
                    node[last]
                    node[last] = "FAKE-NUMBER"
                    say("fired")
                    return json.dumps(top).replace('"FAKE-NUMBER"', FAKE)
                except Exception:
                    pass
            else:
                found = list(NUMBER.finditer(line))
                if found:
                    say("fired")
                    return line[: found[-1].start()] + FAKE + line[found[-1].end() :]
            return line
        class Rewriter:
            def __init__(self, inner):
                self.inner, self.pending = inner, ""
            def write(self, text):
                self.pending += text
                while "\\n" in self.pending:
                    line, self.pending = self.pending.split("\\n", 1)
                    self.inner.write(rewrite(line) + "\\n")
                return len(text)
            def flush(self):
                if self.pending:
                    line, self.pending = self.pending, ""
                    self.inner.write(rewrite(line))
                self.inner.flush()
            def __getattr__(self, name):
                return getattr(self.inner, name)
        for name in {streams!r}:
            setattr(sys, name, Rewriter(getattr(sys, name)))
            atexit.register(getattr(sys, name).flush)
    """
    return fake_attack(prober, "stdout-replaced", textwrap.dedent(body), fires=True)
