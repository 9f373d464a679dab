#!/usr/bin/env bash
# One device call: examples/copies/train.py (a host-resident batch copied every step, pageable or pinned)
# for real through frameworks_timing.py, at batch sizes whose copy sizes were not measured by
# h2d_bandwidth.py (6, 24, 48 MiB): the held-out check of profiles/host_link.py. Writes $OUT/copies.jsonl.
#   bash benchmarks/real/copies_device.sh
set -u
for rep in 1 2; do
  for cfg in "--batch 768 --dim 2048" "--batch 3072 --dim 2048" "--batch 6144 --dim 2048"; do
    for pin in "" "--pin"; do
      name="copies b$(echo $cfg | cut -d' ' -f2)${pin:+ pin}"
      python3 benchmarks/real/frameworks_timing.py --name "${name// /_}" examples/copies/train.py $cfg $pin 2>/dev/null \
        | grep '^{"harness' | sed "s/^{/{\"rep\": $rep, /" >> $OUT/copies.jsonl
    done
  done
done
cat $OUT/copies.jsonl | cut -c1-200
