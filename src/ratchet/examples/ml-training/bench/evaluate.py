"""The example's trusted scorer: reads the model train.py saved, never train.py itself.

    python3 -B bench/evaluate.py val        the metric's score step (ratchet runs it from a
                                            pristine copy of the harness, outside the
                                            checkout; the model is in $RATCHET_CANDIDATE)
    python3 -B bench/evaluate.py holdout    the holdout: the same on a split the proposer
                                            never sees (run in the candidate's checkout)
    python3 -B bench/evaluate.py params     the guard: the model's parameter count
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# prepare.py is beside bench/. Appended, not prepended: in the candidate's checkout a module
# its run step left at the root (a numpy.py) must not shadow the real one for this frozen code.
sys.path.append(str(Path(__file__).resolve().parent.parent))

import prepare  # noqa: E402


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "val"
    if what not in ("val", "holdout", "params"):
        print(f"evaluate.py: unknown mode {what!r} (val, holdout or params)", file=sys.stderr)
        return 2
    # The score step runs elsewhere and is told where the candidate is; the others run inside it.
    model_file = Path(os.environ.get("RATCHET_CANDIDATE", ".")) / prepare.MODEL_FILE
    try:
        weights, biases, activation = prepare.load_model(model_file)
    except (OSError, ValueError, KeyError) as exc:
        print(f"evaluate.py: cannot read the model {model_file}: {exc}", file=sys.stderr)
        return 1
    if what == "params":
        print(f"params: {sum(w.size for w in weights) + sum(b.size for b in biases)}")
        return 0
    x, y = prepare.split(what)
    loss = prepare.cross_entropy(prepare.forward(weights, biases, activation, x), y)
    if not loss == loss:  # NaN weights: no number, so ratchet records the experiment as invalid
        print("evaluate.py: the model's loss is NaN", file=sys.stderr)
        return 1
    print(f"{what}_loss: {loss:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
