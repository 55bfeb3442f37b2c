"""Benchmarks of the kernels, the architectures and the engine around them: `python -m bench --help`."""
