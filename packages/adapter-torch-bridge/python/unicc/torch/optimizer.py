"""DistributedOptimizer: each gradient's allreduce starts from a hook the moment backward has
accumulated it, so communication overlaps the rest of backward; step() waits for all of them."""

import torch

from ._ops import Average, Compression, allreduce_async_


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
        self._unicc_compression = compression
        self._unicc_op = op
        self._unicc_handles = {}
        self._unicc_hooks = [p.register_post_accumulate_grad_hook(self._unicc_hook) for p in params if p.requires_grad]

    def _unicc_hook(self, p):
        if id(p) in self._unicc_handles:
            raise RuntimeError("unicc.torch.DistributedOptimizer: gradient of %s was produced twice before step(); "
                               "call step() (or synchronize()) after each backward" % self._unicc_names[id(p)])
        self._unicc_handles[id(p)] = allreduce_async_(p.grad, op=self._unicc_op, name="grad." + self._unicc_names[id(p)],
                                                  compression=self._unicc_compression)

    def synchronize(self):
        """Waits for every gradient's allreduce (the averaged gradients are then in .grad)."""
        handles, self._unicc_handles = self._unicc_handles, {}
        for h in handles.values():
            h.wait()

    def step(self, closure=None):
        self.synchronize()
        return super().step(closure)

    def zero_grad(self, set_to_none=True):
        if self._unicc_handles:
            raise RuntimeError("unicc.torch.DistributedOptimizer: zero_grad() while gradient allreduces are pending; "
                               "call step() or synchronize() first")
        return super().zero_grad(set_to_none=set_to_none)


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
