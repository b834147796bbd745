"""hookgate plugin: fallback and weighted load balancing across targets, with a circuit breaker."""
