"""Provider adapters: a department's systems publish to the bus through the one publisher path."""
