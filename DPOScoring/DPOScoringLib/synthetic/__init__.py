"""The phantom CT with known truth (imported by tests, benchmarks and the demo only)."""
