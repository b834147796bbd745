"""hookgate plugin: transparent retries with exponential backoff and Retry-After."""
