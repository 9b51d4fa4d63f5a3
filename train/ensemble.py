"""Average the posteriors of several trained bundles in one model, exported as one bundle.

The members run inside one LiteRT graph, so the runtime is unchanged and the cost is the sum
of the members' (a few tenths of a millisecond for three TC-ResNets). Scored and written like
any trained model (``kws_train.main.finish``):

    python -m kws_train.ensemble --bundles runs/bundles/a runs/bundles/b --data DIR --out models/default
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import keras

from kws.bundle import load_bundle
from kws.config import load_config, with_overrides
from kws.errors import KwsError
from kws_train.export import logits_model
from kws_train.main import finish, prepare


def average(models: list[keras.Model]) -> keras.Model:
    """One model whose posteriors are the normalised geometric mean of the members'.

    Averaged in the log domain (mean of log-softmax, then softmax), so the exported model can
    end at the averaged logits like any other (``kws_train.export.logits_model``).
    """
    inputs = keras.Input(shape=models[0].input_shape[1:], name="features")
    # Fresh names: members trained alike share one, and a model's layer names must be unique.
    members = [keras.Model(m.inputs, logits_model(m).outputs[0], name=f"member{i}")
               for i, m in enumerate(models)]
    logs = [keras.layers.Activation("log_softmax")(m(inputs)) for m in members]
    mean = keras.layers.Average()(logs)
    return keras.Model(inputs, keras.layers.Activation("softmax", name="posteriors")(mean),
                       name="ensemble")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kws_train.ensemble", description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", nargs="+", required=True, metavar="DIR")
    parser.add_argument("--data", required=True, metavar="DIR", help="the data the members were trained on")
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--workdir", metavar="DIR", help="default: runs/<name of --out>")
    parser.add_argument("--config", help="the members' training config")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    bundles = [load_bundle(b, config) for b in args.bundles]
    if any(b.labels != bundles[0].labels for b in bundles):
        raise KwsError("the bundles have different labels")
    config = with_overrides(config, {"words": bundles[0].words})
    model = average([keras.models.load_model(b.path / "model.keras") for b in bundles])
    work = Path(args.workdir) if args.workdir else Path("runs") / Path(args.out).name
    work.mkdir(parents=True, exist_ok=True)
    members = [{"bundle": str(b.path), **{k: b.metadata["training"][k] for k in
                                        ("arch", "parameters", "epochs_run", "best_epoch", "seconds", "config")}}
               for b in bundles]
    training = {"arch": "ensemble of " + ", ".join(m["arch"] for m in members),
                "parameters": model.count_params(), "members": members,
                "seconds": sum(m["seconds"] for m in members)}
    curves = []  # each member's training curves travel with the ensemble
    for i, b in enumerate(bundles):
        if (b.path / "curves.png").is_file():
            curves.append(work / f"curves-member{i}.png")
            shutil.copyfile(b.path / "curves.png", curves[-1])
    metrics = finish(model, prepare(config, args.data), config, args.out, work, training, curves)
    print(json.dumps({k: metrics[k]["balanced_accuracy"] for k in ("validation", "testing") if k in metrics}))


if __name__ == "__main__":
    main()
