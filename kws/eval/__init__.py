"""Evaluation: long labelled test audio, scoring detections on it, and the benchmark."""
