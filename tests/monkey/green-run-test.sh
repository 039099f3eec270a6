#!/bin/sh
# green-run behaves like env(1): environment, arguments, exit status and
# fatal signals pass through; the shim is prepended to LD_PRELOAD, keeping
# what was there; unmodified programs print the same with and without it.
set -u
build=${1:-build}
gr="$build/green-run"
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
ko() { fail=$((fail + 1)); echo "FAIL: $1"; }
t() { name=$1; shift; if "$@"; then ok "$name"; else ko "$name"; fi; }

t "--help exits 0" sh -c "'$gr' --help | grep -q 'usage: green-run'"
t "no program: usage, 125" sh -c "'$gr' >/dev/null 2>&1; [ \$? = 125 ]"
t "unknown program: 127" sh -c "'$gr' /nonexistent/prog 2>/dev/null; [ \$? = 127 ]"
t "exit status passes" sh -c "'$gr' sh -c 'exit 42'; [ \$? = 42 ]"
t "fatal signal passes" sh -c "'$gr' sh -c 'kill -KILL \$\$'; [ \$? = 137 ]"
t "arguments pass" sh -c "[ \"\$('$gr' printf '%s|' a 'b c' -x)\" = 'a|b c|-x|' ]"
t "environment passes" sh -c "[ \"\$(FOO=bar '$gr' sh -c 'echo \$FOO')\" = bar ]"
t "shim preloaded first, old LD_PRELOAD kept" sh -c \
    "LD_PRELOAD=libdl.so.2 '$gr' sh -c 'echo \$LD_PRELOAD' | grep -Eq 'libgreen-monkey.so:libdl.so.2\$'"
# Transparency: programs that never use libgreen behave exactly the same.
same() { # name, command...
    name=$1; shift
    a=$("$@" 2>&1; echo "rc=$?")
    b=$("$gr" "$@" 2>&1; echo "rc=$?")
    if [ "$a" = "$b" ]; then ok "same: $name"; else ko "same: $name"; echo "  without: $a"; echo "  with:    $b"; fi
}
same "sleep 0.2" sleep 0.2
same "ls" ls /
same "sh pipeline" sh -c 'seq 1 1000 | sort -n | tail -1'
if command -v python3 >/dev/null 2>&1; then
    same "python3 sockets/select/time/getaddrinfo/subprocess" python3 -c '
import socket, select, time, subprocess
a, b = socket.socketpair(); a.sendall(b"x" * 100000)
got = 0
while got < 100000:
    r, _, _ = select.select([b], [], [], 1); got += len(b.recv(65536))
print(got); time.sleep(0.05)
print(socket.getaddrinfo("127.0.0.1", 80, proto=socket.IPPROTO_TCP)[0][4])
print(subprocess.run(["echo", "child"], capture_output=True).stdout)
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
c = socket.create_connection(s.getsockname()); d, _ = s.accept(); c.sendall(b"hi"); print(d.recv(2))'
fi
echo "green-run: $pass passed, $fail failed"
[ "$fail" = 0 ]
