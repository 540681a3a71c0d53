"""Avatar definitions, configuration, model provisioning, the pipeline builder and launch CLI."""
