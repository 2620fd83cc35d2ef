"""Demo dataset: realistic exports with known, seeded violations."""
