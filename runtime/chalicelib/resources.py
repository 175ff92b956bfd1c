"""What a job needs (vCPUs, memory) turned into the instance types that meet it, once, when it is scheduled.

Step Functions' CreateFleet call could take EC2's attribute-based selection
(``InstanceRequirements`` in the overrides), but moto's fleets need an
``InstanceType`` in every override, so the workflow could not be tested with
it. The equivalent is done here instead: ``DescribeInstanceTypes`` in the
deployment's region, current generation, offered as Spot, of the stack
image's architecture, without accelerators or local instance storage (they
cost more and the container uses neither), not burstable unless the job
allows it; of the types
that meet every minimum, the closest fits (fewest vCPUs, then least memory:
the cheapest in a family) are the job's ``instanceTypes``. The fleet then
chooses among them price-capacity-optimised, as for any job.

A job that asks for ``gpus`` gets only types with at least that many whole
NVIDIA GPUs (the GPU image's driver is NVIDIA's, and ``docker run --gpus``
needs it; fractional GPUs count as none), with no other accelerator; local
instance storage is allowed then, since every common GPU family (g4dn, g5,
g6) has it. Fewest GPUs come first, then the closest fit as above.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import aws, config
from .schema import JobError

if TYPE_CHECKING:  # development-only stubs
    from mypy_boto3_ec2.type_defs import FilterTypeDef

# The stack's image (the ECS-optimised Amazon Linux 2023 AMI) is built for x86_64.
ARCHITECTURE = "x86_64"
# What DescribeInstanceTypes says of a type with GPUs, FPGAs or inference chips.
ACCELERATORS = frozenset({"GpuInfo", "FpgaInfo", "InferenceAcceleratorInfo", "NeuronInfo"})
# At most this many types: the overrides (types x subnets) stay a modest request.
MAX_TYPES = 20


def instance_types(resources: dict[str, Any]) -> list[str]:
    """The instance types of this region that meet ``resources``, closest fit first; a JobError if none."""
    vcpus, memory_mib = int(resources["vcpus"]), int(float(resources["memoryGiB"]) * 1024)
    gpus = int(resources.get("gpus") or 0)
    filters: list[FilterTypeDef] = [{"Name": "current-generation", "Values": ["true"]},
               {"Name": "supported-usage-class", "Values": ["spot"]},
               {"Name": "processor-info.supported-architecture", "Values": [ARCHITECTURE]}]
    if not gpus:
        # Local instance storage costs more, and the container does not use it.
        filters.append({"Name": "instance-storage-supported", "Values": ["false"]})
    if not resources.get("burstable"):
        filters.append({"Name": "burstable-performance-supported", "Values": ["false"]})
    found = []
    for page in aws.ec2().get_paginator("describe_instance_types").paginate(Filters=filters):
        for kind in page["InstanceTypes"]:
            cpus, memory = kind["VCpuInfo"]["DefaultVCpus"], kind["MemoryInfo"]["SizeInMiB"]
            # A job pays only for the accelerators it asks for; bare metal boots too slowly to be worth it.
            if cpus >= vcpus and memory >= memory_mib and _accelerators_fit(kind, gpus) and not kind.get("BareMetal"):
                found.append((nvidia_gpus(kind), cpus, memory, kind["InstanceType"]))
    if not found:
        needs = f"{vcpus} vCPUs" + (f", {gpus} NVIDIA GPUs" if gpus else "")
        raise JobError("resources", f"no instance type in {config.region()} has {needs} and "
                                    f"{resources['memoryGiB']} GiB of memory")
    return [name for *_, name in sorted(found)[:MAX_TYPES]]


def nvidia_gpus(kind: Mapping[str, Any]) -> int:
    """How many whole NVIDIA GPUs DescribeInstanceTypes says the type has (a fraction of one counts as none)."""
    devices = kind.get("GpuInfo", {}).get("Gpus", [])
    return sum(int(device.get("Count", 0)) for device in devices if device.get("Manufacturer") == "NVIDIA")


def _accelerators_fit(kind: Mapping[str, Any], gpus: int) -> bool:
    # Without gpus: no accelerator at all. With gpus: enough NVIDIA GPUs and no other kind of accelerator.
    if not gpus:
        return not ACCELERATORS & set(kind)
    return nvidia_gpus(kind) >= gpus and not (ACCELERATORS - {"GpuInfo"}) & set(kind)
