"""hookgate plugin: structured request logs, tokens and cost, Prometheus metrics, a SQLite log store."""
