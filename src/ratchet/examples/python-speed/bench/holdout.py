"""The holdout: correct renders per CPU second on inputs the proposer never sees (higher is better).

ratchet runs this only for would-be keeps and never shows a proposer its number, its command or
its verdict's details. It renders templates unlike the benchmark's, the way an application
does: one template, a stream of records, one context dict updated in place for each record.
Every output must carry its own record's id; a single wrong one makes the score 0, since
wrong output is worth nothing however fast it came. So a change that serves the benchmark
(which renders each input many times in a row) at the expense of real use, such as returning
the previous call's output for the same objects, loses here even when it wins there: the
catalog's "probably somewhat overfit", caught instead of shipped.

In your own project keep the holdout's inputs where the proposer cannot read them (an agent
reads its checkout): a path outside the repository in [holdout] command, for instance.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's library, not an installed one
import minitemplate  # noqa: E402

ORDER_EMAIL = """\
Dear {{ customer.first_name|title }},

thank you for order {{ order.id }} ({{ order.lines|length }} items):
{% for line in order.lines %}  - {{ line.quantity }} x {{ line.name|strip }} at {{ line.price }}
{% endfor %}{% if order.gift %}It will be gift-wrapped, as you asked.
{% else %}Keep the receipt for returns.
{% endif %}We ship to {{ customer.address.city|upper }} within {{ shipping_days }} days.
"""

SHIPPING_NOTICE = """\
<p>Parcel {{ order.id }} for {{ customer.first_name|escape }} {{ customer.last_name|escape }} has left our warehouse.</p>
{% if order.tracking %}<p>Track it: <a href="{{ order.tracking|escape }}">{{ order.tracking|lower }}</a></p>{% endif %}
"""

NAMES = "ines kofi mei olu pavel quinn rosa sami tariq uma vera wen".split()
CITIES = "lagos lima lyon oslo osaka porto quito riga".split()
ROUNDS = 5


def records(rng: random.Random, count: int) -> list[dict]:
    out = []
    for number in range(count):
        lines = [
            {"quantity": rng.randint(1, 4), "name": f" {rng.choice(NAMES)} mug ", "price": f"{rng.uniform(3, 40):.2f}"}
            for _ in range(rng.randint(1, 6))
        ]
        order = {"id": f"#H{number:05d}#", "lines": lines, "gift": rng.random() < 0.2,
                 "tracking": f"https://track.example/{number}" if rng.random() < 0.7 else ""}  # fmt: skip
        customer = {"first_name": rng.choice(NAMES), "last_name": rng.choice(NAMES), "address": {"city": rng.choice(CITIES)}}
        out.append({"order": order, "customer": customer})
    return out


def main() -> None:
    rng = random.Random(20240917)  # not the benchmark's seed, not its templates
    stream = records(rng, 300)
    best = 0.0
    for _ in range(ROUNDS):  # the fastest of a few rounds: the least disturbed by other programs
        renders = wrong = 0
        start = time.process_time()
        for source in (ORDER_EMAIL, SHIPPING_NOTICE):
            context = {"shipping_days": 3}
            for record in stream:
                context.update(record)  # one dict for the whole stream, as a mail-merge loop does
                renders += 1
                wrong += record["order"]["id"] not in minitemplate.render(source, context)
        seconds = max(time.process_time() - start, 1e-9)
        if wrong:
            print(f"holdout: {wrong} of {renders} renders were wrong", file=sys.stderr)
            best = 0.0
            break
        best = max(best, renders / seconds)
    print(f"holdout_renders_per_s: {best:.1f}")


if __name__ == "__main__":
    main()
