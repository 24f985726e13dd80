"""The desktop program (PySide6 + pyqtgraph). Runs the model on LiteRT; never imports
TensorFlow. All slow work (scanning, decoding, model loading, prediction, reports) runs in
workers (:mod:`.workers`)."""
