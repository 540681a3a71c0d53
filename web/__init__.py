"""The web app: pages, signaling, REST API and health."""
