#!/bin/sh
# The supervisor of one instance on an SSH node, installed by deploy/ssh.
#
#   supervise.sh run DIR BACKOFF_MIN BACKOFF_MAX MAX_RESTARTS WINDOW LOG_MAX
#   supervise.sh stop DIR GRACE
#
# run (started with setsid, so the supervisor leads a process group of its
# own) runs DIR/run.sh with stdout and stderr appended to DIR/logs, restarts
# it with doubling backoff (seconds), and gives up after more than
# MAX_RESTARTS exits within WINDOW seconds (state crash-loop). It keeps
# state, pid, restarts and last_exit in DIR. stop sends SIGTERM to the
# whole group, SIGKILL after GRACE seconds, and returns once the group is
# gone.
#
# A stop may come at any moment of a start, even before the supervisor has
# run a line. So the starter removes DIR/stopping and writes the
# supervisor's PID to DIR/sup.pid before its command returns; stop creates
# DIR/stopping before it reads sup.pid; and the supervisor, which never
# removes stopping, writes sup.pid itself and then looks for stopping before
# it starts each child and after. Whichever comes first, the stop finds the
# supervisor's PID or the supervisor finds the stop.
set -u
cmd=$1
dir=$2
cd "$dir" || exit 1

rotate() {
	for f in logs/stdout.log logs/stderr.log; do
		if [ -f "$f" ] && [ "$(wc -c <"$f")" -gt "$1" ]; then
			mv -f "$f.2" "$f.3" 2>/dev/null
			mv -f "$f.1" "$f.2" 2>/dev/null
			mv -f "$f" "$f.1"
		fi
	done
}

# put FILE VALUE writes VALUE to FILE in one step: Status reads these files
# at any time, and a file being rewritten in place reads empty for a moment.
put() {
	echo "$2" >"$1.$$" && mv -f "$1.$$" "$1"
}

# alive PID succeeds while the process PID or its process group exists.
alive() {
	kill -0 "-$1" 2>/dev/null || kill -0 "$1" 2>/dev/null
}

# finish STATE ends the supervisor.
finish() {
	put state "$1"
	rm -f sup.pid
	exit 0
}

case $cmd in
run)
	bmin=$3 bmax=$4 maxr=$5 window=$6 logmax=$7
	child=""
	trap 'touch stopping; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM
	put sup.pid $$
	put restarts 0
	restarts=0 backoff=$bmin exits=""
	while :; do
		[ -e stopping ] && finish stopped
		mkdir -p logs
		rotate "$logmax"
		sh ./run.sh >>logs/stdout.log 2>>logs/stderr.log &
		child=$!
		put pid "$child"
		put state running
		# A stop's SIGTERM to the group misses a child started after it.
		[ -e stopping ] && kill -TERM "$child" 2>/dev/null
		started=$(date +%s)
		while :; do
			wait "$child"
			rc=$?
			kill -0 "$child" 2>/dev/null || break
		done
		child=""
		if [ "$rc" -gt 128 ]; then
			put last_exit "signal $((rc - 128))"
		else
			put last_exit "exit status $rc"
		fi
		rm -f pid
		[ -e stopping ] && finish stopped
		now=$(date +%s)
		if [ $((now - started)) -ge "$window" ]; then
			backoff=$bmin
			exits=""
		fi
		kept="" n=0
		for e in $exits $now; do
			if [ $((now - e)) -le "$window" ]; then
				kept="$kept $e"
				n=$((n + 1))
			fi
		done
		exits=$kept
		[ "$n" -gt "$maxr" ] && finish crash-loop
		put state backoff
		sleep "$backoff" &
		wait $! 2>/dev/null
		[ -e stopping ] && finish stopped
		backoff=$((backoff * 2))
		[ "$backoff" -gt "$bmax" ] && backoff=$bmax
		restarts=$((restarts + 1))
		put restarts "$restarts"
	done
	;;
stop)
	grace=$3
	touch stopping
	pg=$(cat sup.pid 2>/dev/null || true)
	if [ -n "$pg" ]; then
		# Until it has run setsid, the supervisor is no group leader yet: its
		# PID alone names it.
		kill -TERM "-$pg" "$pg" 2>/dev/null
		i=0
		while alive "$pg" && [ "$i" -lt $((grace * 10)) ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if alive "$pg"; then
			kill -KILL "-$pg" "$pg" 2>/dev/null
			put last_exit "signal 9 (killed after the grace period)"
			i=0
			while alive "$pg" && [ "$i" -lt 50 ]; do
				sleep 0.1
				i=$((i + 1))
			done
		fi
		rm -f sup.pid
	fi
	rm -f pid
	put state stopped
	;;
esac
