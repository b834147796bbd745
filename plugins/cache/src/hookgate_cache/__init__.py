"""hookgate plugin: exact-match response cache, in memory or in Redis."""
