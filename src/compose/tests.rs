//! Model tests: the corpus differential test covers Compose fidelity at large.
