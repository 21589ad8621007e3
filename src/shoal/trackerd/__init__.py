"""trackerd."""
