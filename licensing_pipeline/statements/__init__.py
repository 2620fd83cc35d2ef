"""Customer statements: one tenant's contract, usage and findings, for that tenant only."""
