"""Race testing with a linearizability checker (in development: see issue)."""
