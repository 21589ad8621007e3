"""tracker/proto."""
