"""hookgate provider plugin: Azure OpenAI deployments."""
