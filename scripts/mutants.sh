#!/usr/bin/env bash
# Mutation testing of the incremental tail's fast paths (docs/design/incremental-tail.md):
# cargo-mutants changes one operator, condition or return value at a time in the code that keeps
# the tail up to date (the tail plan and its execution, the session's change report, the
# segment engine's tail shortcuts, the strength cache) and runs chan-core's tests (ci profile:
# optimised, debug assertions on, so the kept-tail check runs) against each. A mutant the tests
# do not catch is either a missing test or a change that only costs time (a guard made stricter
# than its invariant needs); the design note lists which.
#
# Long: on two cores, about a minute per mutant. PROPTEST_CASES (default 64 here) sets the
# cases of each property test; arguments pass through to cargo mutants, e.g.
#   scripts/mutants.sh --list            # the mutants, without running them
#   scripts/mutants.sh --shard 0/4       # a quarter of them
#   MUTANTS_RE='[^:]plan|LiveTail::' scripts/mutants.sh   # the tail plan and its execution
# The report goes to target/mutants.out (outcomes.json, caught.txt, missed.txt, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
# Installed once per machine; the check spares a registry look-up on every run.
if ! cargo mutants --version >/dev/null 2>&1; then
  cargo install cargo-mutants --locked
fi
src=rust-core/chan-core/src
# The functions of the tail's fast paths; in these files the rest (bar checks, the rules of
# segments and points themselves) is covered by the golden files and needs no mutants here.
only='LiveTail::|[^:]plan|PenChange::|Tail::|Tail>::|Engine::tail|Engine::derive_tail'
only+='|Session::(append|replace_last|report|apply_batch)'
only+='|SegmentEngine::(tail|settled_by|last_feed_ends_nothing|tail_by_run|pending_and_forming|forming)'
only+='|StrengthCache::'
# MUTANTS_RE narrows the run to other names, e.g. MUTANTS_RE='plan|LiveTail::' (the plan alone).
only="${MUTANTS_RE:-$only}"
export PROPTEST_CASES="${PROPTEST_CASES:-64}"
exec cargo mutants --package chan-core \
  --file "$src/analysis/tail.rs" \
  --file "$src/analysis/session.rs" \
  --file "$src/segment.rs" \
  --file "$src/signal.rs" \
  --re "$only" \
  --profile ci \
  --timeout 300 \
  --output target \
  "$@"
