#!/bin/sh
# Counts the escape hatches of the type system in src/, so that a guard can forbid new ones:
# a type error "fixed" by a cast to `any` or a suppression comment is hidden, not fixed, and
# tsc's error count alone would reward it.
#
#   sh check/escapes.sh any            `as any`, `: any`, `<any>`, `any[]`, `= any`, `, any`, `| any`
#                                      and `as unknown as` (a double cast that lies the same way)
#   sh check/escapes.sh suppressions   `@ts-ignore`, `@ts-nocheck`, `@ts-expect-error`
#
# Prints each occurrence as file:line:match (the guard's output, shown to the proposer when it
# fails) and then `<kind>: N`, the number the guard reads. Exit 0 unless the kind is unknown.
set -eu
case "${1:-}" in
    any) pattern='(\<as|[:<>,|=])[[:space:]]*any\>|\<any[[:space:]]*\[\]|\<as[[:space:]]+unknown[[:space:]]+as\>' ;;
    suppressions) pattern='@ts-(ignore|nocheck|expect-error)\>' ;;
    *) echo "usage: sh check/escapes.sh any|suppressions" >&2; exit 2 ;;
esac
# -o: one line per occurrence, not per line. grep exits 1 when nothing matches: that is a count
# of 0, not a failure (2, a real error such as a missing src/, still stops the script).
found=$(grep -rnoE --include='*.ts' --include='*.tsx' --include='*.mts' --include='*.cts' "$pattern" src) || [ $? -eq 1 ]
if [ -n "$found" ]; then
    printf '%s\n' "$found"
    count=$(printf '%s\n' "$found" | wc -l)
else
    count=0
fi
echo "$1: $count"
