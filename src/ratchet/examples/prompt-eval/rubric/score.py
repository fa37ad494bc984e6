"""The landing-page rubric: four yes/no criteria and one penalty, as a percentage. Frozen (harness).

The criteria are the ones the PM's loop used (a measurable outcome in the headline, a specific
call to action, social proof above the fold) and a headline short enough to read at a glance,
25 points each. False scarcity ("only 3 seats left", "ends tonight") anywhere on the page halves
the score: it lifts a click today and costs trust tomorrow. Added to a champion it always loses
(the PM's auto-reverted change); a trial that also fixes enough else can still win with it, and
then the next trial that drops it doubles the score. (A 0 instead would hide from the optuna
proposer which of a trial's other changes helped: in 4 seeded runs of 20 trials it reached 100
once with a 0, every time with the halving.)

Deterministic on purpose: the same copy always gets the same score, so one measurement decides.

    python3 -B rubric/score.py landing/copy.toml   ->   one line per criterion, then `rubric: 50.0`
"""

from __future__ import annotations

import re
import sys

from page import load

# A number with a unit a reader can hold you to: 40%, 3x, 2 hours, 14 days.
OUTCOME = re.compile(r"\b\d+(?:\.\d+)?\s*(?:%|x\b|×|percent|times|hours?|minutes?|days?|weeks?)", re.IGNORECASE)
# Calls to action that say nothing about what happens next.
GENERIC_CTA = {"get started", "learn more", "sign up", "submit", "click here", "try it", "start now", "go", "continue"}
# What the proof line must carry to count: a number, or a customer named in quotes.
PROOF = re.compile(r"\d|[\"“][^\"”]+[\"”]")
# Scarcity and urgency that the page cannot back: counts of seats left, deadlines of tonight.
FALSE_SCARCITY = re.compile(
    r"only \d+ (?:left|seats?|spots?|places?)|\d+ (?:seats?|spots?) left|last chance|hurry|limited time|act now"
    r"|ends? (?:tonight|today|soon)|prices? (?:go(?:es)? up|rises?)|before it'?s gone|while (?:stocks?|supplies) last",
    re.IGNORECASE,
)
MAX_HEADLINE_WORDS = 10


def criteria(copy: dict[str, str]) -> list[tuple[str, bool, str]]:
    """(name, passed, why) for each criterion, in a fixed order."""
    headline, cta = copy["headline"].strip(), copy["cta"].strip()
    words = len(headline.split())
    cta_specific = cta.lower().rstrip(".!") not in GENERIC_CTA and len(cta.split()) >= 3
    return [
        ("headline-outcome", bool(OUTCOME.search(headline)), "the headline states a measurable outcome (40%, 2 hours, 3x)"),
        ("headline-short", words <= MAX_HEADLINE_WORDS, f"the headline has {words} words (at most {MAX_HEADLINE_WORDS})"),
        ("cta-specific", cta_specific, "the call to action says what the visitor gets (not 'Get started', 3 words or more)"),
        ("proof-above-fold", bool(PROOF.search(copy["proof"])), "social proof above the fold carries a number or a named customer"),
    ]


def false_scarcity(copy: dict[str, str]) -> list[str]:
    """The scarcity phrases anywhere on the page, each once."""
    return sorted({match.group(0).lower() for text in copy.values() for match in FALSE_SCARCITY.finditer(text)})


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: score.py landing/copy.toml", file=sys.stderr)
        return 2
    copy = load(argv[1])
    results = criteria(copy)
    for name, passed, why in results:
        print(f"{'pass' if passed else 'FAIL'}  {name}: {why}")
    score = 100 * sum(passed for _, passed, _ in results) / len(results)
    found = false_scarcity(copy)
    if found:
        print(f"FAIL  no-false-scarcity: found {', '.join(repr(phrase) for phrase in found)}; the score is halved")
        score /= 2
    else:
        print("pass  no-false-scarcity: no urgency the page cannot back")
    print(f"rubric: {score:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
