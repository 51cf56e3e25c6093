"""DistributedOptimizer: each gradient's allreduce starts from a hook the moment backward has
accumulated it, so communication overlaps the rest of backward; step() waits for all of them.

Gradients live in shared memory: at wrap time every CPU float32/float64 parameter's .grad becomes a
view of one slab that the bridge has mapped, and backward accumulates into it in place, so the core
reduces the gradient where torch wrote it, with no copy either way. A gradient that is not such a
view (another dtype or device, or .grad replaced, e.g. set to None by model.zero_grad()) goes
through the copying path instead."""

import torch

import unicc

from ._ops import Average, Compression, _check_op, allreduce_async_

_NATIVE = {torch.float32: "f32", torch.float64: "f64"}
_ALIGN = 64


class _DistributedOptimizer:
    """Mixed in front of the wrapped optimizer's own class, so isinstance checks and LR schedulers
    still see a torch.optim.Optimizer of the original kind."""

    def _unicc_setup(self, named_parameters, compression, op):
        params = [p for g in self.param_groups for p in g["params"]]
        if named_parameters is not None:
            named = list(named_parameters)
            names = {id(p): n for n, p in named}
            missing = [i for i, p in enumerate(params) if id(p) not in names]
            if missing:
                raise ValueError("unicc.torch.DistributedOptimizer: named_parameters lacks %d of the optimizer's "
                                 "parameters (first at position %d); pass model.named_parameters() of the same model"
                                 % (len(missing), missing[0]))
        else:
            names = {id(p): "param.%d" % i for i, p in enumerate(params)}
        self._unicc_names = names
        self._unicc_compression = None if compression in (None, Compression.none) else compression
        self._unicc_op = _check_op(op)
        self._unicc_handles = {}
        self._unicc_shared = self._unicc_share_grads([p for p in params if p.requires_grad])
        self._unicc_hooks = [p.register_post_accumulate_grad_hook(self._unicc_hook) for p in params if p.requires_grad]

    def _unicc_share_grads(self, params):
        """Points each eligible parameter's .grad at its place in one shared slab: id(p) -> (offset, view)."""
        eligible = [p for p in params if p.device.type == "cpu" and p.dtype in _NATIVE and p.is_contiguous()]
        sizes = [-(-p.numel() * p.element_size() // _ALIGN) * _ALIGN for p in eligible]
        if not sum(sizes):
            return {}
        self._unicc_slab = unicc.bridge().alloc(sum(sizes))
        raw = torch.frombuffer(self._unicc_slab.buffer, dtype=torch.uint8)
        shared, offset = {}, 0
        for p, size in zip(eligible, sizes):
            view = raw[offset:offset + p.numel() * p.element_size()].view(p.dtype).view(p.shape)
            if p.grad is None:
                view.zero_()
            else:
                view.copy_(p.grad)
            p.grad = view
            shared[id(p)] = (offset, view)
            offset += size
        return shared

    def _unicc_hook(self, p):
        name = self._unicc_names[id(p)]
        if id(p) in self._unicc_handles:
            raise RuntimeError("unicc.torch.DistributedOptimizer: gradient of %s was produced twice before step(); "
                               "call step() (or synchronize()) after each backward" % name)
        shared = self._unicc_shared.get(id(p))
        if shared is not None and p.grad is not None and p.grad.data_ptr() == shared[1].data_ptr():
            h = unicc.bridge().submit("allreduce", self._unicc_slab, _NATIVE[p.dtype], p.numel(), offset=shared[0],
                                      op=self._unicc_op, name="grad." + name, compression=self._unicc_compression)
        else:
            h = allreduce_async_(p.grad, op=self._unicc_op, name="grad." + name, compression=self._unicc_compression)
        self._unicc_handles[id(p)] = h

    def synchronize(self):
        """Waits for every gradient's allreduce (the averaged gradients are then in .grad)."""
        handles, self._unicc_handles = self._unicc_handles, {}
        for h in handles.values():
            h.wait()

    def step(self, closure=None):
        self.synchronize()
        return super().step(closure)

    def zero_grad(self, set_to_none=True):
        """Zeroes the shared gradients in place (they stay in shared memory); others as torch does."""
        if self._unicc_handles:
            raise RuntimeError("unicc.torch.DistributedOptimizer: zero_grad() while gradient allreduces are pending; "
                               "call step() or synchronize() first")
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                shared = self._unicc_shared.get(id(p))
                if shared is not None and p.grad.data_ptr() == shared[1].data_ptr():
                    p.grad.zero_()
                elif set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().requires_grad_(False).zero_()


def DistributedOptimizer(optimizer, named_parameters=None, compression=Compression.none, op=Average):
    """Wraps `optimizer` (its state and parameter groups are shared, not copied). `compression`
    (uc.Compression.fp16/bf16) sets how the engine carries the gradients on the wire."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError("unicc.torch.DistributedOptimizer wraps a torch.optim.Optimizer, got %r" % type(optimizer))
    cls = type(optimizer.__class__.__name__, (_DistributedOptimizer, optimizer.__class__), {})
    wrapped = cls.__new__(cls)
    wrapped.__dict__ = optimizer.__dict__
    wrapped._unicc_setup(named_parameters, compression, op)
    return wrapped
