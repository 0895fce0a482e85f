"""Teaching aids: lessons, Deferred and sequence diagrams, captures and the pcapng writer."""
