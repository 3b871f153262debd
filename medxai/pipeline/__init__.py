"""The pipeline on top of the library: config schema, the Decoder, executors, run-level evaluation."""
