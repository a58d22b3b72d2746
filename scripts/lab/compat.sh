# Records a shell test's outcome for README's compatibility table, in the
# format of internal/compat (one JSON line in $RARP_REPLAY_COMPAT_DIR/results.jsonl);
# does nothing when RARP_REPLAY_COMPAT_DIR is unset. Source it, then:
#   compat_record LAYOUT RESULT TEST     RESULT: pass | fail
# The test bed is user-mode Linux under RARP_REPLAY_UML=1, else the host; the
# FRR version is Debian's package's.
compat_record() {
  [ -n "${RARP_REPLAY_COMPAT_DIR:-}" ] || return 0
  local bed=host frr
  [ "${RARP_REPLAY_UML:-}" = 1 ] && bed=uml
  frr=$(dpkg-query -W -f='${Version}' frr 2>/dev/null || echo unknown)
  frr=${frr%%-*}
  mkdir -p "$RARP_REPLAY_COMPAT_DIR"
  printf '{"layout":"%s","how":"live","bed":"%s","kernel":"%s","frr":"%s","test":"%s","result":"%s","time":"%s"}\n' \
    "$1" "$bed" "$(uname -r)" "$frr" "$3" "$2" "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" >> "$RARP_REPLAY_COMPAT_DIR/results.jsonl"
}
