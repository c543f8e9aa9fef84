"""Using a trained policy: load it as a plain callable (``policy.py``), export it as one ONNX or
TorchScript graph (``export.py``), and run it in its task's env with an optional video (``play.py``).

Layer 6, like ``genpo/experiments``: it rebuilds runs through ``genpo.builders``. The export and video
pieces need the ``deploy`` extra (onnx, onnxscript, onnxruntime, imageio) and import it on use.
"""
