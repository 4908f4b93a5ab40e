"""The conformance suite as pytest collects it: one parametrised test, every case and model as data."""
