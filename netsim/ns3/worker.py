"""``python -m netsim.ns3.worker``: one packet-level run, JSON request on stdin, JSON reply on stdout."""

from __future__ import annotations

import json
import sys

from netsim.ns3.runner import Ns3Error, simulate
from netsim.ns3.spec import FabricSpec, PacketFlow, TransportSpec


def main() -> int:
    req = json.load(sys.stdin)
    try:
        run = simulate(
            FabricSpec(**req["fabric"]),
            TransportSpec(**req["transport"]),
            [PacketFlow.from_json(f) for f in req["flows"]],
            stop_ns=int(req.get("stop_ns", 10_000_000_000)),
        )
    except Ns3Error as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 1
    rows = [[r.flow_id, r.start_ns, r.finish_ns] for r in run.flows]
    print(json.dumps({"results": rows, "drops": run.drops, "wall_s": run.wall_s}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
