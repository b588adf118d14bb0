"""Write the chaos benchmark's events file: `python make_events.py [OUT] [--events N] [--orders K]`.

N `order.changed` events (default 1,000) over K distinct orders (default 300) and 20 SKUs, from a
fixed seed, so the file is the same every time. Each event carries the order's next `version`.
Ids, times and sources are left to faasemu's defaults for events files (`<stem>-<line>`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys

STATUSES = ("created", "paid", "packed", "shipped", "delivered")


def events(count: int = 1000, orders: int = 300, skus: int = 20, seed: int = 4) -> list[dict]:
    rng = random.Random(seed)
    versions: dict[str, int] = {}
    out = []
    for _ in range(count):
        order_id = f"o-{rng.randrange(orders)}"
        version = versions.get(order_id, 0) + 1
        versions[order_id] = version
        out.append({"type": "order.changed", "source": "bench.orders", "data": {
            "order_id": order_id, "version": version, "sku": f"sku-{rng.randrange(skus)}",
            "quantity": rng.randint(1, 9), "status": STATUSES[min(version, len(STATUSES)) - 1]}})
    return out


def write(path: str, count: int = 1000, orders: int = 300) -> int:
    items = events(count, orders)
    with open(path, "w", encoding="utf-8") as file:
        for item in items:
            file.write(json.dumps(item, separators=(",", ":")) + "\n")
    return len({e["data"]["order_id"] for e in items})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", nargs="?", default="events.jsonl")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--orders", type=int, default=300)
    args = parser.parse_args()
    distinct = write(args.out, args.events, args.orders)
    print(f"{args.out}: {args.events} events, {distinct} distinct orders", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
