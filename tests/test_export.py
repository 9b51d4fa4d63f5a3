"""Export (needs TensorFlow): models leave as logits and the runtime's softmax restores their
posteriors, without the int8 softmax's saturation near 1; ensembles average in the log domain."""

import numpy as np
import pytest

from kws.inference import Classifier

pytestmark = pytest.mark.train


def _model(scale: float):
    import keras

    inputs = keras.Input(shape=(98, 40), name="features")
    x = keras.layers.GlobalAveragePooling1D()(inputs)
    outputs = keras.layers.Dense(4, activation="softmax", name="posteriors")(x)
    model = keras.Model(inputs, outputs)
    weights = np.random.default_rng(0).normal(0, scale, (40, 4)).astype(np.float32)
    model.get_layer("posteriors").set_weights([weights, np.zeros(4, np.float32)])
    return model


def test_logits_export_gives_the_keras_posteriors_and_resolution_near_one(tmp_path):
    from kws_train.export import to_tflite

    model = _model(scale=2.0)
    rng = np.random.default_rng(1)
    # A level per window and band, so the averaged features (and logits) are far apart.
    windows = (rng.normal(0, 1, (32, 1, 40)) + rng.normal(0, 0.5, (32, 98, 40))).astype(np.float32)
    expected = model.predict(windows, verbose=0)
    float_path, int8_path = tmp_path / "float.tflite", tmp_path / "int8.tflite"
    float_path.write_bytes(to_tflite(model))
    int8_path.write_bytes(to_tflite(model, windows))
    got = Classifier(float_path, softmax=True).predict(windows)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    top = Classifier(int8_path, softmax=True).predict(windows).max(axis=1)
    confident = expected.max(axis=1) > 0.999
    assert confident.sum() >= 3, "the test needs windows the model is sure of"
    # An int8 softmax output cannot exceed 255/256; logits through a float softmax can.
    assert (top[confident] > 0.999).all()


def test_ensemble_is_the_normalised_geometric_mean():
    from kws_train.ensemble import average
    from kws_train.export import logits_model

    members = [_model(1.0), _model(0.5)]
    windows = np.random.default_rng(2).normal(0, 3, (8, 98, 40)).astype(np.float32)
    probs = [m.predict(windows, verbose=0) for m in members]
    geometric = np.exp(np.mean(np.log(probs), axis=0))
    geometric /= geometric.sum(axis=1, keepdims=True)
    ensemble = average(members)
    np.testing.assert_allclose(ensemble.predict(windows, verbose=0), geometric, atol=1e-5)
    logits = logits_model(ensemble).predict(windows, verbose=0)
    soft = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(soft / soft.sum(axis=1, keepdims=True), geometric, atol=1e-5)
