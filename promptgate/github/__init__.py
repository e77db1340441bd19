"""Talking to GitHub: the Actions environment, workflow commands, the REST API and the PR comment."""
