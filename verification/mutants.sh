#!/usr/bin/env bash
# Mutation testing of ssehub-core (DESIGN.md §10, "Mutation testing"): each
# mutant cargo-mutants makes of core/src must fail a test. Too slow for CI.
#
# The files run in three batches, each against the tests that can reach
# them (fewer test binaries to link per mutant; a narrower suite can only
# miss kills, so the score is a lower bound):
#   reconnect  core/src/reconnect.rs            core unit tests + reconnect_policy
#   codec      core/src/codec/                  core unit tests + the codec suites
#   hub        everything else                  core unit tests + the registry
#              suites + verification's proptest, soak and stress (normal cfg)
# The loom models need `--cfg ssehub_loom` and a build of their own, so they
# are not run per mutant. Exclusions (loom-only code, Debug impls) are in
# .cargo/mutants.toml, each with its reason.
#
# Usage:
#   verification/mutants.sh                 # all three batches
#   verification/mutants.sh hub             # one batch
#   verification/mutants.sh hub -f core/src/topics.rs   # extra cargo-mutants args
#
# Environment: PROPTEST_CASES (default 128), MUTANTS_JOBS (default 1),
# MUTANTS_TIMEOUT seconds per test run (default 90), MUTANTS_OUT (default
# target/mutants). Results: $MUTANTS_OUT/<batch>/mutants.out/{caught,missed,
# timeout,unviable}.txt, and a per-file summary at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null 2>&1; then
    cargo install cargo-mutants --version 27.1.0 --locked
fi

export PROPTEST_CASES="${PROPTEST_CASES:-128}"
# No debug info: smaller test binaries link faster and fill less disk.
export CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_TEST_DEBUG=0
out="${MUTANTS_OUT:-target/mutants}"
# cargo-mutants copies the tree into TMPDIR: keep it on the target's disk.
export TMPDIR="$PWD/$out/tmp"
mkdir -p "$TMPDIR"

run_batch() {
    local batch="$1"
    shift
    local files=() packages=(--test-package ssehub-core) tests=(--lib)
    case "$batch" in
    reconnect)
        files=(-f core/src/reconnect.rs)
        tests+=(--test reconnect_policy)
        ;;
    codec)
        files=(-f 'core/src/codec/*.rs')
        tests+=(--test codec_roundtrip --test codec_settings --test codec_whatwg
            --test decoder_vectors --test error_messages --test reconnect_policy)
        ;;
    hub)
        files=(-e core/src/reconnect.rs -e 'core/src/codec/*.rs')
        packages+=(--test-package ssehub-verification)
        tests+=(--test lifecycle --test order --test presence --test replay
            --test budget --test deadlines --test churn --test queue --test config
            --test error_messages --test shutdown --test blocking_server
            --test prop_registry --test soak_churn --test stress_order)
        ;;
    *)
        echo "unknown batch: $batch (reconnect, codec, hub)" >&2
        exit 2
        ;;
    esac
    # The baseline is skipped: cargo-mutants runs it on the mutated package
    # alone, where the verification test names do not exist. `cargo test`
    # on the unmutated tree is CI's job; the timeouts are explicit instead.
    cargo mutants \
        --package ssehub-core \
        "${packages[@]}" \
        --baseline skip \
        --jobs "${MUTANTS_JOBS:-1}" \
        --timeout "${MUTANTS_TIMEOUT:-90}" \
        --build-timeout 600 \
        --output "$out/$batch" \
        "${files[@]}" \
        "$@" \
        -- "${tests[@]}" || true # exit 2 means "some mutants missed"
}

summary() {
    local dir="$out/$1/mutants.out"
    [ -d "$dir" ] || return 0
    echo "== $1"
    for kind in caught timeout missed unviable; do
        [ -f "$dir/$kind.txt" ] || continue
        sed -E "s/:[0-9]+:[0-9]+:.*/ $kind/" "$dir/$kind.txt"
    done | sort | uniq -c | awk '{print $2, $3, $1}'
}

if [ $# -eq 0 ]; then
    for batch in reconnect codec hub; do
        run_batch "$batch"
    done
    for batch in reconnect codec hub; do
        summary "$batch"
    done
else
    batch="$1"
    shift
    run_batch "$batch" "$@"
    summary "$batch"
fi
rm -rf "$TMPDIR"
