"""An expandable StorageClass for kind: the harness's StorageController, run beside the cluster.

Why: kind's default class (rancher.io/local-path) cannot expand volumes, and the usual expandable test drivers
(csi-driver-host-path with external-resizer) are not served by the Go module proxy these machines reach. So the
same controller that plays the volume driver on the local control plane (goqueue_harness.storage) serves a second
class, ``goqueue-expandable`` (``allowVolumeExpansion: true``, Immediate binding), on kind: a pool of hostPath PVs
whose folders live in a host directory bind-mounted into the node, right-sized on binding and grown (PV capacity,
then the claim's status capacity) when a claim asks for more.

What that proves on kind: the operator's whole resize path against a real API server and a real kubelet mounting
the volume — claims patched, the StatefulSet's claim template re-created with its pods orphaned, the status and
events, brokers keeping their data and staying up. What it does not: a CSI driver's ControllerExpandVolume and
NodeExpandVolume calls, or a file system actually growing (a hostPath folder has no size of its own).

Run as ``python -m goqueue_harness kind-storage --kubeconfig … --volumes-dir …`` (a daemon goqueue_harness.kind
starts after creating a cluster and stops when deleting it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from goqueue_harness.kubeapi import ClientConfig, KubeClient
from goqueue_harness.storage import StorageController

CLASS_NAME = "goqueue-expandable"
POOL_SIZE = 8


async def serve(kubeconfig: Path, volumes_dir: Path, node_volumes_dir: Path) -> None:
    async with KubeClient(ClientConfig.from_kubeconfig(kubeconfig)) as client:
        controller = StorageController(client, volumes_dir, pool_size=POOL_SIZE, class_name=CLASS_NAME,
                                       default_class=False, node_volumes_dir=node_volumes_dir)
        await controller.bootstrap()
        await controller.run()


def main(kubeconfig: Path, volumes_dir: Path, node_volumes_dir: Path) -> None:
    asyncio.run(serve(kubeconfig, volumes_dir, node_volumes_dir))
