"""Hourly prices of the machines skyt1 runs on: SkyPilot's catalog when it is on this machine, else a
pinned, dated table.

The pinned rows were read from SkyPilot's v8 catalog (skypilot-org/skypilot-catalog; the copy in
../shared/data/skypilot_catalog_v8 used by the tests). Cloud prices drift: `skyt1 cost` prints where each
price came from, and `--gpu-hour-price` or the recipe's `cost.usd_per_gpu_hour` override them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PINNED_AS_OF = "2026-11-21"  # the day these rows were copied from the v8 catalog snapshot (itself undated)
CATALOG_VERSION = "v8"


@dataclass(frozen=True)
class Offer:
    """One way to rent `gpus` x `gpu` (or a CPU machine when gpus == 0) for an hour."""

    cloud: str
    instance_type: str
    gpu: str | None
    gpus: int
    vcpus: float
    usd_per_hour: float
    spot_usd_per_hour: float | None  # cheapest zone; None: the cloud sells no spot capacity
    region: str
    source: str  # "pinned <date>" or "skypilot catalog <dir>"
    spot_by_zone: dict[str, float] = field(default_factory=dict, compare=False)

    def price(self, spot: bool) -> float | None:
        return self.spot_usd_per_hour if spot else self.usd_per_hour


_PINNED_SOURCE = f"pinned table: SkyPilot catalog {CATALOG_VERSION} rows (undated snapshot), copied {PINNED_AS_OF}"

# 8xH100 nodes. Lambda sells no spot instances; AWS spot differs a lot by zone (some zones no discount).
PINNED_GPU_OFFERS: tuple[Offer, ...] = (
    Offer("lambda", "gpu_8x_h100_sxm5", "H100", 8, 208, 31.92, None, "us-east-1", _PINNED_SOURCE),
    Offer(
        "aws", "p5.48xlarge", "H100", 8, 192, 55.04, 11.2543, "us-east-2", _PINNED_SOURCE,
        spot_by_zone={"use2-az1": 11.2543, "use2-az2": 11.5616, "usw2-az1": 12.6935, "use1-az2": 19.2531},
    ),
)
# CPU machines for the CPU phases, priced per vCPU-hour (AWS m6i.2xlarge, Lambda cpu_4x_general).
PINNED_CPU_OFFERS: tuple[Offer, ...] = (
    Offer("aws", "m6i.2xlarge", None, 0, 8, 0.384, 0.15, "us-east-1", _PINNED_SOURCE),
    Offer("lambda", "cpu_4x_general", None, 0, 4, 0.20, None, "us-east-1", _PINNED_SOURCE),
)


def catalog_dir() -> Path:
    """Where SkyPilot keeps its catalog CSVs ($SKY_RUNTIME_DIR, else $HOME)."""
    root = os.environ.get("SKY_RUNTIME_DIR") or os.path.expanduser("~")
    return Path(root) / ".sky" / "catalogs" / CATALOG_VERSION


def _catalog_clouds() -> list[str]:
    base = catalog_dir()
    return sorted(p.parent.name for p in base.glob("*/vms.csv")) if base.is_dir() else []


def catalog_gpu_offers(gpu: str, count: int) -> list[Offer]:
    """GPU offers from SkyPilot's own catalog look-up, for the clouds whose CSVs are already on disk.

    Never triggers a download: clouds without a local CSV are left out (the pinned table covers them).
    Returns [] when SkyPilot is not installed.
    """
    clouds = _catalog_clouds()
    if not clouds:
        return []
    try:
        from sky import catalog
    except ImportError:
        return []
    source = f"SkyPilot catalog {catalog_dir()}"
    offers = []
    for cloud in clouds:
        try:
            found = catalog.list_accelerators(
                gpus_only=True, name_filter=gpu, quantity_filter=count, clouds=cloud, all_regions=True
            )
        except Exception:  # a cloud whose catalog cannot be read is priced from the pinned table
            continue
        rows = [r for r in found.get(gpu, []) if int(r.accelerator_count) == count and r.instance_type]
        if not rows:
            continue
        best = min(rows, key=lambda r: r.price)
        spots = [r.spot_price for r in rows if r.spot_price and r.spot_price == r.spot_price]  # drop NaN
        offers.append(
            Offer(
                cloud.lower(), best.instance_type, gpu, count, best.cpu_count or 0, float(best.price),
                float(min(spots)) if spots else None, best.region, source,
            )
        )
    return offers


def gpu_offers(gpu: str = "H100", count: int = 8) -> list[Offer]:
    """Catalog offers where available, pinned offers for the other clouds."""
    found = {o.cloud: o for o in catalog_gpu_offers(gpu, count)}
    for o in PINNED_GPU_OFFERS:
        if o.gpu == gpu and o.gpus == count:
            found.setdefault(o.cloud, o)
    return sorted(found.values(), key=lambda o: o.cloud)


def cpu_usd_per_vcpu_hour(cloud: str, spot: bool = False) -> float:
    """Price of one vCPU-hour on a general-purpose machine of `cloud` (cheapest pinned row)."""
    rows = [o for o in PINNED_CPU_OFFERS if o.cloud == cloud] or list(PINNED_CPU_OFFERS)
    prices = [(o.price(spot) if o.price(spot) is not None else o.usd_per_hour) / o.vcpus for o in rows]
    return min(prices)
