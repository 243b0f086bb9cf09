#!/usr/bin/env bash
# Mutation testing of ssehub-core (DESIGN.md §10, "Mutation testing"): each
# mutant cargo-mutants makes of core/src must fail a test. Too slow for CI.
#
# The files run in four batches, each against the core tests that reach
# them (fewer test binaries to link per mutant; a narrower suite can only
# miss kills, so the score is a lower bound):
#   reconnect  core/src/reconnect.rs        unit tests + reconnect_policy
#   codec      core/src/codec/              unit tests + the codec suites
#   order      hub/{lifecycle,publish,external,presence}.rs
#                                           the registry suites + order + churn
#   hub        everything else              the registry suites
# The codec proptests in the unit tests are skipped outside the codec batch.
# The verification crate (proptest state machine, soak, stress) and the loom
# models are not run per mutant: on the shared 2-core machine they cost more
# than the whole registry suite; a survivor can be rechecked against them by
# hand. Exclusions (loom-only code, Debug impls) are in .cargo/mutants.toml,
# each with its reason.
#
# Usage:
#   verification/mutants.sh                 # all four batches
#   verification/mutants.sh hub             # one batch
#   verification/mutants.sh hub -f core/src/topics.rs   # extra cargo-mutants args
#
# Environment: PROPTEST_CASES (default 64), MUTANTS_JOBS (default 2),
# MUTANTS_TIMEOUT seconds per test run (default 60), MUTANTS_OUT (default
# target/mutants). Results: $MUTANTS_OUT/<batch>/mutants.out/{caught,missed,
# timeout,unviable}.txt, and a per-file summary at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null 2>&1; then
    cargo install cargo-mutants --version 27.1.0 --locked
fi

export PROPTEST_CASES="${PROPTEST_CASES:-64}"
# No debug info: smaller test binaries link faster and fill less disk.
export CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_TEST_DEBUG=0
out="${MUTANTS_OUT:-target/mutants}"
# cargo-mutants copies the tree into TMPDIR: keep it on the target's disk.
export TMPDIR="$PWD/$out/tmp"
mkdir -p "$TMPDIR"

run_batch() {
    local batch="$1"
    shift
    local files=() registry=(--test lifecycle --test presence --test replay
        --test budget --test deadlines --test config --test shutdown --test external
        --test boundaries --test presence_events)
    local tests=(--lib) skip=(-- --skip codec:: --skip id::tests::parsers)
    case "$batch" in
    reconnect)
        files=(-f core/src/reconnect.rs)
        tests+=(--test reconnect_policy)
        ;;
    codec)
        files=(-f 'core/src/codec/*.rs')
        tests+=(--test codec_roundtrip --test codec_settings --test codec_whatwg
            --test decoder_vectors --test error_messages --test reconnect_policy)
        skip=()
        ;;
    order)
        files=(-f core/src/hub/lifecycle.rs -f core/src/hub/publish.rs
            -f core/src/hub/external.rs -f core/src/hub/presence.rs)
        tests+=("${registry[@]}" --test order --test churn)
        ;;
    hub)
        files=(-e core/src/reconnect.rs -e 'core/src/codec/*.rs'
            -e core/src/hub/lifecycle.rs -e core/src/hub/publish.rs
            -e core/src/hub/external.rs -e core/src/hub/presence.rs)
        tests+=("${registry[@]}" --test queue --test error_messages)
        ;;
    *)
        echo "unknown batch: $batch (reconnect, codec, order, hub)" >&2
        exit 2
        ;;
    esac
    # The baseline is skipped (`cargo test` on the unmutated tree is CI's
    # job), so the timeouts are explicit: a mutant that hangs a test (a
    # loop that never ends, a reader never woken) counts as caught.
    cargo mutants \
        --package ssehub-core \
        --baseline skip \
        --jobs "${MUTANTS_JOBS:-2}" \
        --timeout "${MUTANTS_TIMEOUT:-60}" \
        --build-timeout 600 \
        --output "$out/$batch" \
        "${files[@]}" \
        "$@" \
        -- "${tests[@]}" "${skip[@]}" || true # exit 2: some mutants missed
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
    for batch in reconnect codec order hub; do
        run_batch "$batch"
    done
    for batch in reconnect codec order hub; do
        summary "$batch"
    done
else
    batch="$1"
    shift
    run_batch "$batch" "$@"
    summary "$batch"
fi
rm -rf "$TMPDIR"
