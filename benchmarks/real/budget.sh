# Sourced by the one-call device drivers: a wall-clock budget shared by their steps.
# Needs BUDGET (seconds), T0 (start, epoch seconds), W (work folder) and OUT (device tool's folder).
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
# lim CAP [RESERVE]: seconds a step may take: at most CAP, leaving RESERVE for later steps, at least 1
lim() { local l; l=$(( $(left) - ${2:-20} )); (( l > $1 )) && l=$1; (( l < 1 )) && l=1; echo $l; }
pack() { tar -C $W -czf $OUT/prof.tar.gz . ; }
