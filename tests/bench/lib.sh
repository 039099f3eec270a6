# Shell helpers shared by the benchmark suites (sourced, POSIX sh).
#
# A suite is tests/bench/suite_<name>.sh, run by run.sh as
#     sh tests/bench/suite_<name>.sh BUILD
# and runnable alone the same way. It sources this file, calls bench_init,
# builds its programs into $BENCH_OUT with the bench_build_* helpers, runs
# them with bench_run, and prints its tables with bench_section/bench_row.
#
# The contract with the benchmark programs: each prints its figures as lines
#     result <key> <value>
# and anything else (details) on lines starting with '#'. bench_run keeps the
# results in $BENCH_RESULTS; a key measured by several invocations (run
# interleaved with a peer's, to share the machine's noise fairly) is read back
# by bench_get as the median of all of them.
#
# Peers: bench_have <peer> tells whether a peer is installed (boost, st, go,
# gevent, cxx, ucontext); a row whose peer is missing prints "skipped (not
# installed)", never nothing.
#
# Variables after bench_init:
#   BENCH_BUILD    the build dir (holds libgreen.a)
#   BENCH_OUT      $BENCH_BUILD/bench: programs, logs, results
#   BENCH_PIN      "taskset -c 0" (BENCH_CPU overrides the CPU), or empty
#   BENCH_PY       a python3 that imports gevent, or empty
#   BENCH_RESULTS  this suite's "key value" lines
#   BENCH_SUMMARY  the markdown summary rows every suite appends to
#   BENCH_STRICT   1: a missed target makes the suite exit non-zero
#
# Programs may also report KEY@cpu: the same figure on the process's CPU time
# rather than the wall clock. A table started with `bench_table_head cpu`
# shows that comparison in a last column, which stays meaningful when other
# processes share the CPU (wall-clock figures then grow with their time).

bench_init() {
    BENCH_BUILD=${1:?usage: suite BUILD}
    BENCH_SRC=$(cd "$(dirname "$0")" && pwd)
    BENCH_ROOT=$(cd "$BENCH_SRC/../.." && pwd)
    case $BENCH_BUILD in
        /*) ;;
        *) BENCH_BUILD=$BENCH_ROOT/$BENCH_BUILD ;;
    esac
    BENCH_OUT=$BENCH_BUILD/bench
    mkdir -p "$BENCH_OUT/status"
    BENCH_NAME=$(basename "$0" .sh)
    BENCH_RESULTS=$BENCH_OUT/$BENCH_NAME.results
    : >"$BENCH_RESULTS"
    BENCH_LOG=$BENCH_OUT/$BENCH_NAME.log
    : >"$BENCH_LOG"
    if [ -z "${BENCH_SUMMARY:-}" ]; then
        BENCH_SUMMARY=$BENCH_OUT/$BENCH_NAME.summary
        BENCH_SUMMARY_OWN=1
        : >"$BENCH_SUMMARY"
    fi
    BENCH_MISSED=0
    BENCH_MISSED_CPU=0
    BENCH_ERRORS=0
    BENCH_RUNS=0
    BENCH_NOISY=0
    BENCH_TIMEOUT=${BENCH_TIMEOUT:-600}
    if command -v taskset >/dev/null 2>&1; then
        BENCH_PIN="taskset -c ${BENCH_CPU:-0}"
    else
        BENCH_PIN=""
        echo "note: taskset not found (util-linux): runs are NOT pinned to one CPU"
    fi
    BENCH_PY=""
    for py in /usr/bin/python3 python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import gevent, greenlet' 2>/dev/null; then
            BENCH_PY=$(command -v "$py")
            break
        fi
    done
    CC=${CC:-cc}
    CXX=${CXX:-g++}
    BENCH_CFLAGS=${BENCH_CFLAGS:--O2 -g}
    export GOCACHE=$BENCH_OUT/go-cache GOPATH=$BENCH_OUT/go-path GO111MODULE=off GOFLAGS=
    export GOMAXPROCS=1
    if [ ! -f "$BENCH_BUILD/libgreen.a" ]; then
        echo "error: $BENCH_BUILD/libgreen.a is missing (make BUILD=... lib, or make bench)" >&2
        exit 1
    fi
}

# A path relative to the repository, for printing.
bench_rel() {
    case $1 in
        "$BENCH_ROOT"/*) printf '%s' "${1#"$BENCH_ROOT"/}" ;;
        *) printf '%s' "$1" ;;
    esac
}

# bench_have PEER: 0 if the peer's headers/tools are installed.
bench_have() {
    case $1 in
        boost) [ -f /usr/include/boost/context/detail/fcontext.hpp ] && command -v "$CXX" >/dev/null 2>&1 ;;
        st) [ -f /usr/include/st.h ] ;;
        go) command -v go >/dev/null 2>&1 ;;
        gevent | greenlet) [ -n "$BENCH_PY" ] ;;
        cxx) command -v "$CXX" >/dev/null 2>&1 ;;
        ucontext | libgreen) true ;;
        *) false ;;
    esac
}

# Records why a peer cannot be measured; rows print the reason.
bench_peer_status() { # PEER TEXT
    printf '%s\n' "$2" >"$BENCH_OUT/status/$1"
}

# bench_peer_ok PEER: installed and its programs built.
bench_peer_ok() {
    [ ! -s "$BENCH_OUT/status/$1" ]
}

bench_peer_reason() {
    if [ -s "$BENCH_OUT/status/$1" ]; then cat "$BENCH_OUT/status/$1"; else echo "no result"; fi
}

# Checks a peer at the start of a suite: a missing one is said once, here.
bench_need() { # PEER
    rm -f "$BENCH_OUT/status/$1"
    if ! bench_have "$1"; then
        bench_peer_status "$1" "skipped (not installed)"
        echo "peer $1: skipped (not installed)"
    fi
}

# Runs a build command; on failure marks the peer and keeps the log.
bench_build() { # PEER OUT CMD...
    _peer=$1 _out=$2
    shift 2
    bench_peer_ok "$_peer" || return 1
    echo "  build $(bench_rel "$_out")" >>"$BENCH_LOG"
    echo "    $*" >>"$BENCH_LOG"
    rm -f "$_out"
    if ! "$@" >>"$BENCH_LOG" 2>&1; then
        echo "build of $(bench_rel "$_out") FAILED (see $(bench_rel "$BENCH_LOG"))"
        if [ "$_peer" = libgreen ]; then
            BENCH_ERRORS=$((BENCH_ERRORS + 1)) # its rows say "no result"
        else
            bench_peer_status "$_peer" "skipped (build failed, see $(bench_rel "$BENCH_LOG"))"
        fi
        return 1
    fi
}

# C program linked with libgreen (the internals too: -Ilib). On x86-64 it is
# built as the library is (-mno-red-zone), so that lib/arch/switch.h enters
# the switch the way the library does.
bench_build_c() { # OUT SRC [LIBS...]
    _o=$1 _s=$2
    shift 2
    _nrz=""
    [ "$(uname -m)" = x86_64 ] && _nrz="-mno-red-zone -DGREEN__NO_RED_ZONE"
    bench_build libgreen "$_o" $CC -std=gnu11 $BENCH_CFLAGS $_nrz -Wall -Wextra \
        -I"$BENCH_ROOT/include" -I"$BENCH_ROOT/lib" -I"$(dirname "$_s")" \
        "$_s" -o "$_o" "$BENCH_BUILD/libgreen.a" -lev -lm -lpthread "$@"
}

# C program of a peer (not linked with libgreen).
bench_build_peer_c() { # PEER OUT SRC [LIBS...]
    _p=$1 _o=$2 _s=$3
    shift 3
    bench_build "$_p" "$_o" $CC -std=gnu11 $BENCH_CFLAGS -Wall -Wextra -I"$(dirname "$_s")" \
        "$_s" -o "$_o" "$@"
}

bench_build_peer_cxx() { # PEER OUT SRC [LIBS...]
    _p=$1 _o=$2 _s=$3
    shift 3
    bench_build "$_p" "$_o" $CXX $BENCH_CFLAGS -Wall -Wextra -I"$(dirname "$_s")" "$_s" -o "$_o" "$@"
}

# A stdlib-only Go main package (one file), built offline.
bench_build_go() { # OUT FILE.go
    bench_build go "$1" go build -o "$1" "$2"
}

# bench_run PEER CMD...: runs pinned, shows the command and the details,
# keeps the results. A run that fails is reported and its keys stay empty.
# Under /usr/bin/time when there is one: its line shows the share of the CPU
# the program got (below 90 %, other processes ran on that CPU during the
# run and wall-clock figures are inflated: the run is flagged and counted)
# and the whole process's peak RSS.
bench_run() {
    _peer=$1
    shift
    bench_peer_ok "$_peer" || return 0
    case $1 in
        */*) [ -x "$1" ] ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
    if [ $? != 0 ]; then
        echo "  (not built: $(bench_rel "$1"))"
        return 0
    fi
    _cmd=""
    for _a in "$@"; do _cmd="$_cmd $(bench_rel "$_a")"; done
    _env=""
    [ "$_peer" = go ] && _env="GOMAXPROCS=$GOMAXPROCS "
    if [ -x /usr/bin/time ]; then
        set -- /usr/bin/time -f "#time: CPU %P of %e s wall, peak RSS %M KiB" "$@"
    fi
    echo "  \$ ${_env}${BENCH_PIN:+$BENCH_PIN }${_cmd# }"
    _tmp=$BENCH_OUT/.run.$$
    # shellcheck disable=SC2086
    timeout "$BENCH_TIMEOUT" $BENCH_PIN "$@" >"$_tmp" 2>&1
    _rc=$?
    BENCH_RUNS=$((BENCH_RUNS + 1))
    _cpu=$(sed -n 's/^#time: CPU \([0-9]*\)%.*/\1/p' "$_tmp")
    _flag=""
    if [ -n "$_cpu" ] && [ "$_cpu" -lt 90 ]; then
        _flag="  <- busy machine: this program got only $_cpu % of its CPU"
        BENCH_NOISY=$((BENCH_NOISY + 1))
    fi
    sed -n -e 's/^#time: /      # time: /p' -e 's/^#/      #/p' "$_tmp" | sed "/# time: /s/\$/$_flag/"
    sed -n 's/^result \([^ ]*\) \([^ ]*\)$/\1 \2/p' "$_tmp" >>"$BENCH_RESULTS"
    cat "$_tmp" >>"$BENCH_LOG"
    if [ "$_rc" != 0 ]; then
        echo "      !! exit status $_rc$([ "$_rc" = 124 ] && echo " (timeout ${BENCH_TIMEOUT}s)"); output:"
        grep -v '^#\|^result ' "$_tmp" | tail -5 | sed 's/^/      | /'
        [ "$_peer" = libgreen ] && BENCH_ERRORS=$((BENCH_ERRORS + 1))
    fi
    rm -f "$_tmp"
    return 0
}

# bench_get KEY: the median of every value recorded for KEY (empty if none).
bench_get() {
    awk -v k="$1" '$1 == k { v[n++] = $2 }
        END {
            if (!n) exit
            for (i = 1; i < n; i++) { x = v[i]; for (j = i - 1; j >= 0 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
            m = n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
            printf "%.6g\n", m
        }' "$BENCH_RESULTS"
}

# How many invocations a key's median is taken over.
bench_count() {
    awk -v k="$1" '$1 == k { n++ } END { print n + 0 }' "$BENCH_RESULTS"
}

# Human figure: 3 significant digits, thousands separated.
bench_fmt() {
    awk -v x="$1" 'BEGIN {
        if (x == "") { print "—"; exit }
        a = x < 0 ? -x : x
        if (x == int(x) && a >= 1) a = 1000 # integral: no decimals
        if (a < 10) s = sprintf("%.2f", x)
        else if (a < 100) s = sprintf("%.1f", x)
        else {
            s = sprintf("%.0f", x); neg = substr(s, 1, 1) == "-"; if (neg) s = substr(s, 2)
            o = ""; while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
            s = (neg ? "-" : "") s o
        }
        print s
    }'
}

bench_ratio() { # A B -> A/B formatted, or —
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "" || b == "" || b + 0 == 0) { print "—"; exit }
        r = a / b
        print (r < 10 ? sprintf("%.2f", r) : r < 100 ? sprintf("%.1f", r) : sprintf("%.0f", r))
    }'
}

# bench_section TITLE: a table header.
bench_section() {
    echo
    echo "### $1"
    echo
}

# bench_table_head [cpu]: with "cpu", the table gets a last column that
# holds the same comparison on CPU time (keys KEY@cpu), for the programs that
# report it.
bench_table_head() {
    BENCH_TABLE_CPU=${1:-}
    if [ -n "$BENCH_TABLE_CPU" ]; then
        echo "| metric | libgreen | peer | peer figure | libgreen/peer | peer/libgreen | target | verdict | on CPU time: libgreen vs peer, ratio, verdict |"
        echo "|---|---|---|---|---|---|---|---|---|"
    else
        echo "| metric | libgreen | peer | peer figure | libgreen/peer | peer/libgreen | target | verdict |"
        echo "|---|---|---|---|---|---|---|---|"
    fi
}

# The CPU-time cell of a row: "lg vs peer, ratio, verdict", or —.
bench_cpu_cell() { # KIND BOUND LG_KEY PEER_KEY
    _cl="" _cp=""
    [ -n "$3" ] && _cl=$(bench_get "$3@cpu")
    [ -n "$4" ] && _cp=$(bench_get "$4@cpu")
    if [ -z "$_cl" ] && [ -z "$_cp" ]; then
        echo "—"
        return
    fi
    _c="$(bench_fmt "$_cl")"
    [ -n "$4" ] && _c="$_c vs $(bench_fmt "$_cp")"
    [ -n "$_cl" ] && [ -n "$_cp" ] || { echo "$_c"; return; }
    case $1 in
        faster) _c="$_c, peer/libgreen $(bench_ratio "$_cp" "$_cl")" ;;
        le) _c="$_c, libgreen/peer $(bench_ratio "$_cl" "$_cp")" ;;
        *)
            if awk -v l="$_cl" -v p="$_cp" 'BEGIN { exit !(l <= p) }'; then
                _c="$_c, libgreen $(bench_ratio "$_cp" "$_cl")× faster"
            else
                _c="$_c, libgreen $(bench_ratio "$_cl" "$_cp")× slower"
            fi
            ;;
    esac
    case $1 in
        le | faster | max)
            _cv=$(bench_verdict "$1" "$2" "$_cl" "$_cp")
            case $_cv in MISS*) BENCH_MISSED_CPU=$((BENCH_MISSED_CPU + 1)) ;; esac
            _c="$_c, $_cv"
            ;;
    esac
    echo "$_c"
}

# bench_verdict KIND BOUND LG PEER: PASS/MISS for a target.
#   le     libgreen/peer <= BOUND     ("≤ BOUND× peer")
#   faster peer/libgreen >= BOUND     ("≥ BOUND× faster")
#   max    libgreen <= BOUND          (absolute)
#   ok     libgreen value is 1        (it worked)
bench_verdict() {
    awk -v k="$1" -v b="$2" -v l="$3" -v p="$4" 'BEGIN {
        if (l == "") { print "MISS (no result)"; exit }
        if ((k == "le" || k == "faster") && p == "") { print "n/a"; exit }
        if (k == "le") ok = l / p <= b
        else if (k == "faster") ok = p / l >= b
        else if (k == "max") ok = l <= b
        else if (k == "ok") ok = l == 1
        print ok ? "PASS" : "MISS"
    }'
}

bench_target_text() { # KIND BOUND UNIT
    case $1 in
        le) echo "≤ $2× peer" ;;
        faster) echo "≥ $2× faster" ;;
        max) echo "≤ $2 $3" ;;
        ok) echo "succeeds" ;;
        *) echo "—" ;;
    esac
}

# bench_row METRIC LG_KEY PEER_LABEL PEER PEER_KEY [KIND BOUND [UNIT]]
# One table row; a row with a target also goes to the summary.
bench_row() {
    _metric=$1 _lk=$2 _plabel=$3 _peer=$4 _pk=$5 _kind=${6:--} _bound=${7:-} _unit=${8:-}
    _lg=""
    [ -n "$_lk" ] && _lg=$(bench_get "$_lk")
    _pv=""
    [ -n "$_pk" ] && _pv=$(bench_get "$_pk")
    if [ -n "$_pv" ]; then
        _pf=$(bench_fmt "$_pv")
    elif [ -n "$_pk" ]; then
        if bench_peer_ok "$_peer"; then _pf="no result (run failed, see log)"; else _pf=$(bench_peer_reason "$_peer"); fi
    else
        _pf="—"
    fi
    _lf=$(bench_fmt "$_lg")
    if [ "$_kind" = ok ] && [ -n "$_lg" ]; then
        _lf=no
        [ "$_lg" = 1 ] && _lf=yes
    fi
    [ -n "$_lk" ] && [ -z "$_lg" ] && _lf="no result"
    _r1=$(bench_ratio "$_lg" "$_pv")
    _r2=$(bench_ratio "$_pv" "$_lg")
    _tt=$(bench_target_text "$_kind" "$_bound" "$_unit")
    if [ "$_kind" = - ]; then
        _v="—"
    else
        _v=$(bench_verdict "$_kind" "$_bound" "$_lg" "$_pv")
        case $_v in MISS*) BENCH_MISSED=$((BENCH_MISSED + 1)) ;; esac
        [ "$_v" = n/a ] && _v="n/a: $(bench_peer_reason "$_peer")"
    fi
    _cc=""
    if [ -n "${BENCH_TABLE_CPU:-}" ]; then
        # Not in $(...): the cell counts CPU-time misses.
        bench_cpu_cell "$_kind" "$_bound" "$_lk" "$_pk" >"$BENCH_OUT/.cell.$$"
        _cc=$(cat "$BENCH_OUT/.cell.$$")
        rm -f "$BENCH_OUT/.cell.$$"
        echo "| $_metric | $_lf | ${_plabel:-—} | $_pf | $_r1 | $_r2 | $_tt | $_v | $_cc |"
    else
        echo "| $_metric | $_lf | ${_plabel:-—} | $_pf | $_r1 | $_r2 | $_tt | $_v |"
    fi
    if [ "$_kind" != - ]; then
        _fig=$_lf
        [ -n "$_pk" ] && _fig="$_lf vs $_pf"
        case $_kind in
            faster) _rat="peer/libgreen $_r2" ;;
            le) _rat="libgreen/peer $_r1" ;;
            *) _rat="—" ;;
        esac
        echo "| $_metric | ${_plabel:-—} | $_fig | $_rat | $_tt | $_v |${_cc:+ $_cc |}" >>"$BENCH_SUMMARY"
    fi
}

# The summary: every target row of the suites run so far.
bench_print_summary() {
    echo
    echo "### Summary (targets; figures are medians, libgreen first)"
    echo
    echo "| measurement | against | figures (wall clock) | ratio | target | verdict | on CPU time |"
    echo "|---|---|---|---|---|---|---|"
    cat "$BENCH_SUMMARY"
}

# Ends a suite: prints the summary when run alone, and the exit status.
bench_finish() {
    [ -n "${BENCH_SUMMARY_OWN:-}" ] && bench_print_summary
    echo
    echo "$BENCH_NAME: $BENCH_MISSED target(s) missed on wall-clock figures ($BENCH_MISSED_CPU on CPU time), $BENCH_ERRORS error(s); log: $(bench_rel "$BENCH_LOG")"
    if [ "$BENCH_NOISY" != 0 ]; then
        echo "$BENCH_NAME: WARNING: $BENCH_NOISY of $BENCH_RUNS program runs got < 90 % of their CPU (other"
        echo "  processes were running on it): their wall-clock figures are inflated, so read the CPU-time"
        echo "  column, or rerun on a quiet machine."
    fi
    [ "$BENCH_ERRORS" = 0 ] || exit 2
    [ "${BENCH_STRICT:-0}" = 1 ] && [ "$BENCH_MISSED" != 0 ] && exit 1
    exit 0
}
