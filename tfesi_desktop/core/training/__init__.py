"""Training, export and the TensorFlow reference. The only part of the package that imports
Keras/TensorFlow (install the ``train`` extra); the desktop program never imports it."""
