"""libtrainopt.so and trainopt-run, copied here when the package is built
(setup.py)."""
