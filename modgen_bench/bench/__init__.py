"""Performance benchmarks (`modgen-bench bench ...`): tables of time, memory and certificates."""
