"""The workspace: the run branch, its worktree, the scope and the git guard.

``git`` is the one git runner; ``worktree`` turns a proposal into a candidate and keeps or
discards it; ``scope`` matches the scope and harness globs; ``gitguard`` stops a candidate's
commands from moving the run's refs.
"""
