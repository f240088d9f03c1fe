"""ONNX export of the segmenters and onnxruntime inference of the exported files.

- :mod:`clouds.export.graphs`: the export-ready networks (normalisation, backbone, head, the
  model's own semantic inference) as plain ``image -> scores`` modules.
- :mod:`clouds.export.metadata`: what a driver needs to run a graph (classes, padding, output
  kind, test-time strategy), stored in the ONNX file itself.
- :mod:`clouds.export.exporter`: config -> ``model.onnx`` (and ``model.refine.onnx``).
- :mod:`clouds.export.runtime`: onnxruntime sessions behind the model interface
  (:class:`OnnxSegmenter`) and the predictor interface (:class:`OnnxPredictor`).

onnx / onnxruntime / onnxscript are the optional ``export`` extra; they are imported only
where needed.
"""
