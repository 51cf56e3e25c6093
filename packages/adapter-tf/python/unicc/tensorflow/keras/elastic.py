"""Keras for unicc.elastic.State: a model's weights and its optimizer's variables (iterations,
momenta, ...) as state_dict()/load_state_dict(), which State keeps at each commit and syncs to
newcomers:

    opt = unicc.tensorflow.keras.DistributedOptimizer(keras.optimizers.SGD(0.1, momentum=0.9))
    state = unicc.elastic.State(model=unicc.tensorflow.keras.elastic.KerasState(model, opt), epoch=0)
"""

__all__ = ["KerasState"]


class KerasState:
    """`model`: a built Keras model; `optimizer`: the one its steps apply (default model.optimizer,
    set by compile), or None to keep the weights only."""

    def __init__(self, model, optimizer=None):
        if not model.built:
            raise ValueError("unicc.tensorflow.keras.elastic.KerasState: the model is not built yet (give it an "
                             "Input, or call it once) so it has no weights to keep")
        self._model = model
        self._optimizer = optimizer if optimizer is not None else getattr(model, "optimizer", None)
        if self._optimizer is not None and not self._optimizer.built:
            # Its variables exist from now on, so that every commit holds them and a restore puts them back.
            self._optimizer.build(model.trainable_variables)

    def state_dict(self):
        opt = [v.numpy() for v in self._optimizer.variables] if self._optimizer is not None else []
        return {"weights": self._model.get_weights(), "optimizer": opt}

    def load_state_dict(self, state):
        self._model.set_weights(state["weights"])
        if self._optimizer is not None:
            for v, value in zip(self._optimizer.variables, state["optimizer"]):
                v.assign(value)
