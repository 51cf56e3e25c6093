"""Gluon for unicc.elastic.State: a net's parameters and a Trainer's optimizer state (momenta,
update counts) as state_dict()/load_state_dict(), which State keeps at each commit and syncs to
newcomers:

    net = ...; trainer = unicc.mxnet.DistributedTrainer(net.collect_params(), "sgd", {...})
    state = unicc.elastic.State(model=unicc.mxnet.elastic.GluonState(net.collect_params(), trainer), step=0)
"""

import mxnet as mx

__all__ = ["GluonState"]


class GluonState:
    """`params`: a ParameterDict (net.collect_params()); `trainer`: a gluon.Trainer whose updates run
    in this process (DistributedTrainer, or any Trainer not updating on a kvstore), or None."""

    def __init__(self, params, trainer=None):
        self._params = params
        self._trainer = trainer

    def state_dict(self):
        state = {"params": {name: p.data().asnumpy() for name, p in self._params.items()}}
        if self._trainer is not None:
            state["trainer"] = self._updater().get_states(dump_optimizer=True)
        return state

    def load_state_dict(self, state):
        for name, p in self._params.items():
            p.set_data(mx.nd.array(state["params"][name], dtype=p.dtype))
        if self._trainer is not None:
            self._load_trainer(state["trainer"])

    def _updater(self):
        t = self._trainer
        if not t._kv_initialized:
            t._init_kvstore()
        if t._update_on_kvstore:
            raise TypeError("unicc.mxnet.elastic.GluonState: this Trainer updates on its kvstore, whose state it cannot "
                            "keep; use unicc.mxnet.DistributedTrainer (or update_on_kvstore=False)")
        return t._updaters[0]

    def _load_trainer(self, states):
        # As gluon.Trainer.load_states does from a file: every updater takes the states and the one optimizer.
        t = self._trainer
        self._updater()
        for u in t._updaters:
            u.set_states(states)
            u.optimizer = t._updaters[0].optimizer
        t._optimizer = t._updaters[0].optimizer
        t._optimizer.param_dict = {i: p for i, p in enumerate(t._params)}

