# The session's device time, for a command on the lent GPU machine
# (docs/gpu_runbook.md). Source it right after SECONDS=0, before anything
# else:
#
#   SECONDS=0; source tools/device/budget.sh LEFT || exit 2
#       LEFT: the device time left just before this call: `status`'s
#       budget_left_s for the session's first call, else the previous
#       call's lease.budget_left_s less the seconds since its reply. The
#       deadline it implies is recorded on the machine
#       ($MMSEG_RN_STATE/deadline, wall clock).
#   SECONDS=0; source tools/device/budget.sh || exit 2
#       a call sent at once after the previous one, on the same warm
#       machine, without reading `status` in between: the recorded deadline.
#
# It sets, counted in this command's seconds ($SECONDS):
#   REMAIN  the session's device time left at this command's start, less
#           BUDGET_MARGIN_S (default 45) for what the device tool counts
#           outside the command: the time between `status` and the call,
#           and the transfers there and back;
#   END     the second by which this command must be done: REMAIN, at most
#           570 (the device tool stops a command at 600).
# Scripts take their limits from these, e.g. `--time-limit $((END - 60 -
# SECONDS))`. The first command on a bare machine also takes off
# BUDGET_START_S (default 210): the machine's start, which the device tool
# counts and this command did not see (a call that names no kind may wait
# 90 s for an H100, then start an H200). Passing LEFT again later corrects
# the deadline.
#
# Fails (status 2, one "error:" line) on a LEFT that is not a number of
# seconds, with no LEFT and no recorded deadline, and with less than a
# minute left. Uses bash and coreutils only: it runs before setup.sh.
_rn_file=${MMSEG_RN_STATE:-/tmp/mmseg_refinenet}/deadline
_rn_start=$(( $(date +%s) - SECONDS ))  # this command's start, wall clock
if [ $# -ge 1 ]; then
    case $1 in
        '' | *[!0-9]*)
            echo "error: budget.sh: '$1' is not a number of seconds: pass" \
                 "the budget_left_s of the device tool's status" >&2
            return 2 ;;
    esac
    _rn_deadline=$(( _rn_start + $1 - ${BUDGET_MARGIN_S:-45} ))
    if [ ! -f "$_rn_file" ]; then
        _rn_deadline=$(( _rn_deadline - ${BUDGET_START_S:-210} ))
    fi
    mkdir -p "$(dirname "$_rn_file")"
    echo "$_rn_deadline" > "$_rn_file"
elif [ -f "$_rn_file" ]; then
    read -r _rn_deadline < "$_rn_file"
else
    echo "error: budget.sh: no deadline recorded on this machine: pass" \
         "the budget_left_s of the device tool's status" \
         "(source tools/device/budget.sh LEFT)" >&2
    return 2
fi
REMAIN=$(( _rn_deadline - _rn_start ))
END=$(( REMAIN < 570 ? REMAIN : 570 ))
unset _rn_file _rn_start _rn_deadline
if [ "$REMAIN" -lt 60 ]; then
    echo "error: budget.sh: $REMAIN s of device time left: give the" \
         "machine back" >&2
    return 2
fi
export REMAIN END
echo "[budget] $REMAIN s of device time left; this command ends by" \
     "second $END"
