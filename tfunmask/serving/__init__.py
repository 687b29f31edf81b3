"""Exporting a trained generator for serving: SavedModel, ``.keras`` and TFLite (``exporter``),
and the TFLite-friendly form of the graph (``tflite_graph``)."""
