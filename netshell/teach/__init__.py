"""Teaching: lessons, Deferred and sequence diagrams, simulated chains, late-failure reports."""
