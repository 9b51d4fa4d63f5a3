"""Training side of kws: dataset, augmentation, tf.data pipeline, models, fit loop, export, eval.

Modules that need TensorFlow (``pipeline``, ``models``, ``fit``, ``export``, ``main``) import
it themselves; ``dataset``, ``augment``, ``metrics``, ``reports`` and ``evaluate`` do not, so
``kws eval`` runs a bundle through LiteRT without TensorFlow.
"""
