# Phase timing for .ci/run and scripts/test (sourced, not run).
#
#   phase NAME CMD...    runs CMD, records NAME, its wall time and its result
#   phase_row NAME SECONDS RESULT   records a row measured elsewhere
#   phases_table         prints the table of every row recorded so far
#
# Rows go to the file $STACKSHOT_PHASES, so that a script run by another
# (scripts/test under .ci/run) adds to the same table. The first script to
# source this file creates that file and prints the table when it exits,
# whether it passed or failed; scripts below it only record.

if [ -z "${STACKSHOT_PHASES:-}" ]; then
  STACKSHOT_PHASES=$(mktemp "${TMPDIR:-/tmp}/stackshot-phases.XXXXXX")
  export STACKSHOT_PHASES
  _phases_owner=1
  _phases_t0=$(date +%s)
  trap '_phases_exit' EXIT
else
  _phases_owner=0
fi

_phases_now() { date +%s.%N; }

phase_row() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$STACKSHOT_PHASES"; }

phase() {
  local name=$1 t0 rc=0
  shift
  t0=$(_phases_now)
  printf '== phase: %s\n' "$name" >&2
  "$@" || rc=$?
  phase_row "$name" "$(awk -v a="$t0" -v b="$(_phases_now)" 'BEGIN { printf "%.1f", b - a }')" "$([ $rc = 0 ] && echo ok || echo "FAILED ($rc)")"
  return $rc
}

phases_table() {
  local total=$(( $(date +%s) - _phases_t0 ))
  {
    echo
    echo "phase                                          wall s  result"
    echo "---------------------------------------------  ------  ------"
    awk -F'\t' '{ printf "%-45s  %6.0f  %s\n", $1, $2, $3 }' "$STACKSHOT_PHASES"
    echo "---------------------------------------------  ------"
    printf '%-45s  %6d\n' "total (this script, wall)" "$total"
  } >&2
}

_phases_exit() {
  local rc=$?
  phases_table
  rm -f "$STACKSHOT_PHASES"
  exit $rc
}
