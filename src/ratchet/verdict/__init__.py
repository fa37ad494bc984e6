"""The verdict: keep or discard, from samples only.

``policies`` are the ways to compare a candidate with its champion; ``stats`` the tests and
estimates behind them; guards' bounds and the holdout are judged here too.
"""
