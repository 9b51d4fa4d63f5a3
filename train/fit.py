"""The training loop: Keras ``fit`` plus validation, checkpoints, early stopping and resume.

Everything needed to continue lives in the work directory and is replaced atomically at the
end of every epoch: ``last.keras`` (model and optimizer state), ``best.weights.h5`` (the best
epoch by validation balanced accuracy) and ``state.json`` (epoch, best score, history). A run
stopped by Ctrl-C or a crash resumes from its last finished epoch with ``resume=True``; the
data of each epoch depends only on ``(seed, epoch)``, so resuming sees the same batches.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from kws.errors import KwsError
from kws.eval.metrics import score


@keras.saving.register_keras_serializable(package="kws")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` over ``warmup_steps``, then cosine decay to zero at ``total_steps``."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak, self.warmup_steps, self.total_steps = peak, warmup_steps, total_steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.peak * (step + 1) / max(1, self.warmup_steps)
        progress = keras.ops.clip((step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps), 0, 1)
        cosine = 0.5 * self.peak * (1 + keras.ops.cos(math.pi * progress))
        return keras.ops.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def cluster() -> dict | None:
    """``TF_CONFIG``'s cluster and this task, when it names more than one task; else None.

    ``TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type":
    "worker", "index": 0}}'``: the same ``kws train`` command on every machine, each with its
    own ``task``.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
        tasks = sum(len(hosts) for hosts in config["cluster"].values())
        task = {"type": config["task"]["type"], "index": int(config["task"].get("index", 0))}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise KwsError(f"TF_CONFIG: not a cluster description ({type(err).__name__}: {err}); see "
                       "train/README.md, 'Several devices, several machines'") from None
    return {"cluster": config["cluster"], "task": task, "tasks": tasks} if tasks > 1 else None


def is_chief() -> bool:
    """Whether this process writes the results: always, unless ``TF_CONFIG`` names a cluster;
    then the ``chief`` task, or worker 0 of a cluster without one."""
    found = cluster()
    if found is None:
        return True
    task = found["task"]
    if "chief" in found["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and task["index"] == 0


def task_name() -> str:
    """``worker1`` and the like: how a non-chief task names the places it writes to."""
    task = cluster()["task"]
    return f"{task['type']}{task['index']}"


_STRATEGY: tf.distribute.Strategy | None = None


def strategy() -> tf.distribute.Strategy:
    """``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names a cluster (several machines);
    ``MirroredStrategy`` over several visible GPUs (one machine); else the default strategy.

    TensorFlow allows collective ops only when they are set up before anything else runs, so
    in a cluster the strategy is made when this module is imported (below), and thread counts
    come from ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` rather than ``--threads``.
    """
    global _STRATEGY
    if _STRATEGY is None:
        if cluster() is not None:
            _STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            gpus = tf.config.list_logical_devices("GPU")
            _STRATEGY = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    return _STRATEGY


if cluster() is not None:
    strategy()


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """``model``'s outputs for ``x``, on this process alone (``model.predict`` under a
    multi-worker strategy would give each worker only its shard of ``x``)."""
    if not len(x):
        return np.zeros((0, *model.output_shape[1:]), dtype=np.float32)
    return np.concatenate([np.asarray(model(x[i:i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)])


def compile_model(model: keras.Model, learning_rate: float, warmup_steps: int, total_steps: int,
                  soft_targets: bool = False) -> None:
    """Adam with warm-up and cosine decay; labels are class indices, or with ``soft_targets``
    distributions over the classes (distillation, ``kws_train.pipeline.Teacher``)."""
    loss = "categorical_crossentropy" if soft_targets else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(WarmupCosine(learning_rate, warmup_steps, total_steps)),
                  loss=loss, metrics=["accuracy"], jit_compile=False)


def _replace(write, path: Path) -> None:
    """Write via ``write(tmp)`` then rename, so ``path`` is always complete."""
    tmp = path.with_name(f"tmp.{path.name}")
    write(tmp)
    os.replace(tmp, path)


class Workdir:
    """The files of a run in progress (see the module docstring)."""

    def __init__(self, path: str | Path):
        # In a cluster only the chief writes where it is told; every other task keeps its own
        # run (it must resume as the chief does) beside it, as <workdir>.worker1 and so on.
        self.path = Path(path) if is_chief() else Path(f"{path}.{task_name()}")
        self.last = self.path / "last.keras"
        self.best = self.path / "best.weights.h5"
        self.state_file = self.path / "state.json"
        self.logs = self.path / "logs"

    def state(self) -> dict | None:
        if self.state_file.is_file() and self.last.is_file() and self.best.is_file():
            return json.loads(self.state_file.read_text())
        return None

    def reset(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)

    def save(self, model: keras.Model, state: dict, best: bool) -> None:
        if best:
            _replace(model.save_weights, self.best)
        _replace(model.save, self.last)
        _replace(lambda p: p.write_text(json.dumps(state, indent=1)), self.state_file)


class Progress(keras.callbacks.Callback):
    """A tqdm bar per epoch with the running loss and accuracy (hidden when not a terminal)."""

    def __init__(self, steps: int, epochs: int):
        super().__init__()
        self.steps, self.epochs, self.bar = steps, epochs, None

    def on_epoch_begin(self, epoch, logs=None):
        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="step",
                        leave=False, disable=None)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{logs['loss']:.3f}", acc=f"{logs['accuracy']:.3f}", refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()


class Validate(keras.callbacks.Callback):
    """Scores validation each epoch, keeps the best weights, saves state, stops early."""

    def __init__(self, workdir: Workdir, val_x: np.ndarray, val_y: np.ndarray, labels: list[str],
                 patience: int, state: dict):
        super().__init__()
        self.workdir, self.val_x, self.val_y, self.labels = workdir, val_x, val_y, labels
        self.patience, self.state = patience, state
        self.started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        probs = predict(self.model, self.val_x)
        metrics = score(self.val_y, probs.argmax(1), self.labels)
        picked = probs[np.arange(len(self.val_y)), self.val_y]
        logs["val_loss"] = float(-np.mean(np.log(np.maximum(picked, 1e-7))))
        logs["val_accuracy"] = metrics["accuracy"]
        logs["val_balanced_accuracy"] = metrics["balanced_accuracy"]
        record = {"epoch": epoch + 1, "loss": float(logs["loss"]), "accuracy": float(logs["accuracy"]),
                  "val_loss": logs["val_loss"], "val_accuracy": logs["val_accuracy"],
                  "val_balanced_accuracy": logs["val_balanced_accuracy"],
                  "learning_rate": float(self.model.optimizer.learning_rate),
                  "seconds": round(time.time() - self.started, 1)}
        state = self.state
        # Ties (common on small validation sets) go to the lower validation loss.
        key = (record["val_balanced_accuracy"], -record["val_loss"])
        improved = key > (state["best"], -state.get("best_loss", np.inf))
        if improved:
            state["best"], state["best_loss"] = key[0], record["val_loss"]
            state["best_epoch"] = epoch + 1
        state["epoch"] = epoch + 1
        state["history"].append(record)
        state["stopped"] = epoch + 1 - state["best_epoch"] >= self.patience
        self.workdir.save(self.model, state, improved)
        print(f"epoch {epoch + 1}: loss {record['loss']:.4f} acc {record['accuracy']:.4f} "
              f"val_acc {record['val_accuracy']:.4f} val_bal_acc {record['val_balanced_accuracy']:.4f}"
              f"{' *' if improved else ''} ({record['seconds']:.0f} s)", flush=True)
        if state["stopped"]:
            print(f"early stop: no better validation balanced accuracy for {self.patience} epochs",
                  flush=True)
            self.model.stop_training = True


def fit(model: keras.Model, data: tf.data.Dataset, steps: int, epochs: int, workdir: Workdir,
        val_x: np.ndarray, val_y: np.ndarray, labels: list[str], patience: int,
        state: dict, keep: str = "best") -> dict:
    """Train from ``state['epoch']`` to ``epochs``; leave the best (or last) weights in ``model``."""
    if state["epoch"] < epochs and not state["stopped"]:
        if cluster() is not None:
            _multi_worker_keras(model)
        callbacks = [Progress(steps, epochs),
                     Validate(workdir, val_x, val_y, labels, patience, state), *_tensorboard(workdir.logs)]
        model.fit(data, epochs=epochs, initial_epoch=state["epoch"], steps_per_epoch=steps,
                  callbacks=callbacks, verbose=0)
    if keep == "best":  # else the model holds the last epoch's weights already
        model.load_weights(workdir.best)
    return state


def _multi_worker_keras(model: keras.Model) -> None:
    """Work around Keras 3's fit under ``MultiWorkerMirroredStrategy`` (3.15, TensorFlow 2.21):
    it all-reduces a whole ``(x, y)`` batch as one value before the first step, and scalar
    logs (the loss) along an axis they do not have. Both become per-value means across the
    replicas, which is what Keras means to compute; other strategies are left alone."""
    from keras.src.backend.tensorflow import trainer

    dist = strategy()

    def mean(values):
        return tf.nest.map_structure(lambda v: dist.reduce("MEAN", v, axis=None), values)

    if not getattr(trainer.reduce_per_replica, "kws_multi_worker", False):
        original = trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction="auto"):
            if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
                return mean(values)
            return original(values, strategy, reduction)

        reduce_per_replica.kws_multi_worker = True
        trainer.reduce_per_replica = reduce_per_replica

    def symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = mean(next(it))
                break
        with dist.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = symbolic_build


def _tensorboard(logdir: Path) -> list:
    """TensorBoard logging where the optional ``tensorboard`` package is installed."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return []
    return [keras.callbacks.TensorBoard(str(logdir), write_graph=False)]


def new_state() -> dict:
    return {"epoch": 0, "best": -1.0, "best_loss": float("inf"), "best_epoch": 0, "stopped": False, "history": []}
