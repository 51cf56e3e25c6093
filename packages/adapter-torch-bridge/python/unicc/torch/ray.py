"""Ray Train on unicc: `TorchTrainer(..., torch_config=UniccConfig())` and the workers' process
group is unicc's ("unicc" backend), so DDP and torch.distributed calls in the training function
run on unicc's core. Ray still places and restarts the workers; only the communication changes.

    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer
    from unicc.torch.ray import UniccConfig

    TorchTrainer(train_fn, scaling_config=ScalingConfig(num_workers=4), torch_config=UniccConfig()).fit()
"""

import os
import socket
from dataclasses import dataclass

from ray.train.torch.config import TorchConfig, _TorchBackend


def _register():
    # The backend registers itself with torch.distributed on import, in the worker's process.
    import unicc.torch  # noqa: F401


def _free_port():
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _set_store_port(port):
    # torch's env:// rendezvous takes MASTER_PORT on worker 0; unicc's store needs a port of its own.
    os.environ["UNICC_STORE_PORT"] = str(port)


def _leave():
    import unicc

    unicc.shutdown()


class _UniccBackend(_TorchBackend):
    def on_start(self, worker_group, backend_config):
        worker_group.execute(_register)
        worker_group.execute(_set_store_port, port=worker_group.execute_single(0, _free_port))
        super().on_start(worker_group, backend_config)

    def on_shutdown(self, worker_group, backend_config):
        super().on_shutdown(worker_group, backend_config)
        worker_group.execute(_leave)


@dataclass
class UniccConfig(TorchConfig):
    """TorchConfig whose process group is unicc's. UNICC_* settings (compression, timeout) reach the
    workers through Ray's runtime_env like any environment variable."""

    backend: str = "unicc"

    @property
    def backend_cls(self):
        return _UniccBackend
