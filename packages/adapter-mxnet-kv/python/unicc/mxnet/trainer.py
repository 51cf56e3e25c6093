"""DistributedTrainer, as horovod.mxnet's: a gluon.Trainer without a kvstore whose gradients are
summed across ranks by unicc, with the Trainer's scale divided by the number of ranks, so that
`trainer.step(local_batch_size)` averages over the global batch. All gradients of a step are in
flight together (named "<prefix><index>"), so the engine fuses them. Parameters marked
`unicc_local` (ShardedSoftmaxClassifier's class weights: their gradient is already the global
batch's) are left out."""

import mxnet as mx

from .kvstore import UniccKVStore


class DistributedTrainer(mx.gluon.Trainer):
    def __init__(self, params, optimizer, optimizer_params=None, compression=None, prefix="grad."):
        super().__init__(params, optimizer, optimizer_params=optimizer_params, kvstore=None)
        self._unicc = UniccKVStore(compression=compression)
        self._unicc_prefix = prefix

    # step() and update() divide by the number of ranks in effect then: an elastic job's re-formed
    # world has another one. (gluon.Trainer sets _scale in its __init__, before _unicc exists.)
    @property
    def _scale(self):
        unicc_kv = self.__dict__.get("_unicc")
        return self._unicc_scale / (unicc_kv.num_workers if unicc_kv is not None else 1)

    @_scale.setter
    def _scale(self, value):
        self._unicc_scale = value

    def _allreduce_grads(self):
        todo = [(i, p) for i, p in enumerate(self._params) if p.grad_req != "null" and not getattr(p, "unicc_local", False)]
        if todo:
            self._unicc.pushpull(["%s%d" % (self._unicc_prefix, i) for i, _ in todo], [p.list_grad() for _, p in todo])
