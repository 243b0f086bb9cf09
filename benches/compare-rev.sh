#!/usr/bin/env bash
# Runs one criterion bench against this tree and against an earlier revision,
# interleaved, in one run, and prints each round's figures side by side.
#
#   benches/compare-rev.sh <rev> <bench> [rounds] [-- criterion args]
#
# The earlier revision is checked out into a scratch git worktree; this
# tree's copy of the bench file is put into it (so both sides run the very
# same bench code, against their own ssehub-core), and the rounds alternate
# between the two builds so that machine noise hits both alike.
set -euo pipefail
rev=${1:?usage: compare-rev.sh <rev> <bench> [rounds]}
bench=${2:?usage: compare-rev.sh <rev> <bench> [rounds]}
rounds=${3:-5}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
extra=("$@")
top=$(git rev-parse --show-toplevel)
# What "new" measures: HEAD when the run starts, plus any uncommitted change.
new_rev=$(git -C "$top" rev-parse --short HEAD)$(git -C "$top" diff --quiet HEAD -- . || echo "+changes")
scratch=$(mktemp -d)
trap 'git -C "$top" worktree remove --force "$scratch/old" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
git -C "$top" worktree add -q --detach "$scratch/old" "$rev"
cp "$top/benches/benches/$bench.rs" "$scratch/old/benches/benches/"
if ! grep -q "name = \"$bench\"" "$scratch/old/benches/Cargo.toml"; then
    printf '\n[[bench]]\nname = "%s"\nharness = false\n' "$bench" >>"$scratch/old/benches/Cargo.toml"
fi
export CARGO_TARGET_DIR_NEW="$top/target" CARGO_TARGET_DIR_OLD="$scratch/target"
(cd "$top" && cargo bench -p ssehub-benches --bench "$bench" --no-run -q)
(cd "$scratch/old" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR_OLD" cargo bench -p ssehub-benches --bench "$bench" --no-run -q)
for round in $(seq "$rounds"); do
    for side in new old; do
        if [ "$side" = new ]; then dir=$top; target=$CARGO_TARGET_DIR_NEW; else dir=$scratch/old; target=$CARGO_TARGET_DIR_OLD; fi
        echo "== round $round: $side ($( [ "$side" = new ] && echo "$new_rev" || echo "$rev"))"
        (cd "$dir" && CARGO_TARGET_DIR="$target" cargo bench -q -p ssehub-benches --bench "$bench" -- \
            --warm-up-time 1 --measurement-time 5 --noplot "${extra[@]}" 2>&1 |
            grep -E '^[a-z_0-9/+x-]+ *$|time:|thrpt:' || true)
    done
done
