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
# whole group, SIGKILL after GRACE seconds.
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

case $cmd in
run)
	bmin=$3 bmax=$4 maxr=$5 window=$6 logmax=$7
	echo $$ >sup.pid
	rm -f stopping
	echo 0 >restarts
	restarts=0 backoff=$bmin exits="" child=""
	trap 'touch stopping; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM
	while :; do
		mkdir -p logs
		rotate "$logmax"
		sh ./run.sh >>logs/stdout.log 2>>logs/stderr.log &
		child=$!
		echo "$child" >pid
		echo running >state
		started=$(date +%s)
		while :; do
			wait "$child"
			rc=$?
			kill -0 "$child" 2>/dev/null || break
		done
		child=""
		if [ "$rc" -gt 128 ]; then
			echo "signal $((rc - 128))" >last_exit
		else
			echo "exit status $rc" >last_exit
		fi
		rm -f pid
		if [ -e stopping ]; then
			echo stopped >state
			exit 0
		fi
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
		if [ "$n" -gt "$maxr" ]; then
			echo crash-loop >state
			exit 0
		fi
		echo backoff >state
		sleep "$backoff" &
		wait $! 2>/dev/null
		if [ -e stopping ]; then
			echo stopped >state
			exit 0
		fi
		backoff=$((backoff * 2))
		[ "$backoff" -gt "$bmax" ] && backoff=$bmax
		restarts=$((restarts + 1))
		echo "$restarts" >restarts
	done
	;;
stop)
	grace=$3
	touch stopping
	if [ -f sup.pid ] && kill -0 "$(cat sup.pid)" 2>/dev/null; then
		pg=$(cat sup.pid)
		kill -TERM "-$pg" 2>/dev/null
		i=0
		while kill -0 "-$pg" 2>/dev/null && [ "$i" -lt $((grace * 10)) ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if kill -0 "-$pg" 2>/dev/null; then
			kill -KILL "-$pg" 2>/dev/null
			echo "signal 9 (killed after the grace period)" >last_exit
		fi
	fi
	rm -f pid
	echo stopped >state
	;;
esac
