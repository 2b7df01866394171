#!/usr/bin/env bash
# bench/storm.sh N PREFIX CMD... - runs CMD N times at once (one loop, `&`), with every
# `{}` in CMD replaced by PREFIX1 … PREFIXN, waits for all, and fails (exit 1, the first
# failure's stderr on stderr) when any of them failed. Used by the scale section.
set -u
n=$1 prefix=$2; shift 2
dir=$(mktemp -d /tmp/berth-storm.XXXXXX)
for i in $(seq 1 "$n"); do
  args=("${@//\{\}/$prefix$i}")
  ( "${args[@]}" > /dev/null 2> "$dir/$i.err"; echo $? > "$dir/$i.rc" ) &
done
wait
bad=0
for i in $(seq 1 "$n"); do
  if [ "$(cat "$dir/$i.rc" 2>/dev/null)" != 0 ]; then
    [ $bad = 0 ] && { echo "storm: $prefix$i failed:" >&2; head -n 3 "$dir/$i.err" >&2; }
    bad=$((bad + 1))
  fi
done
rm -rf "$dir"
[ $bad = 0 ] || { echo "storm: $bad of $n failed" >&2; exit 1; }
