"""hookgate plugin: semantic response cache on Chroma with a local embedding model."""
