"""genpo's benchmarks, one tool per module; run each from the checkout as ``python -m benchmarks.<name>``."""
