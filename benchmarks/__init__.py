"""Benchmarks for nogil_collections: ``python -m benchmarks --quick | --full``.

One module per topic:

- :mod:`benchmarks.registry`: the implementations compared, probed for what they support;
- :mod:`benchmarks.scaling`: T threads on one shared container, read/write mixes;
- :mod:`benchmarks.single`: single-thread cost of each operation against the builtin;
- :mod:`benchmarks.memory`: memory per element against the builtin;
- :mod:`benchmarks.machine`: what a result was measured on;
- :mod:`benchmarks.report`: progress bar, tables, markdown and plots;
- :mod:`benchmarks.cli`: the command line.

docs/performance.md describes the method and the caveats.
"""
