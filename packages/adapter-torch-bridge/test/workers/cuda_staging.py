# CUDA tensors staged through host memory: every collective on a device tensor must equal the
# same on CPU. Run where torch sees a GPU (the adapter's tests skip it elsewhere).
import torch

import unicc.torch as uc

uc.init()
r, n = uc.rank(), uc.size()
dev = torch.device("cuda", uc.local_rank() % torch.cuda.device_count())
g = torch.Generator().manual_seed(100 + r)
for dtype in (torch.float32, torch.float16, torch.int64):
    cpu = (torch.randn(1000, 3, generator=g) * 100).to(dtype)
    gpu = cpu.to(dev)
    for name, f in (("allreduce", lambda t: uc.allreduce(t, op=uc.Sum)), ("broadcast", lambda t: uc.broadcast(t, n - 1)),
                    ("allgather", uc.allgather)):
        a, b = f(gpu), f(cpu)
        assert a.device == dev and a.dtype == dtype, (name, a.device, a.dtype)
        assert torch.equal(a.cpu(), b), "%s %s differs on %s" % (name, dtype, dev)
h = uc.allreduce_async_(gpu, op=uc.Max)
assert h.wait() is gpu and gpu.device == dev
print("OK cuda rank %d of %d on %s" % (r, n, torch.cuda.get_device_name(dev)), flush=True)
