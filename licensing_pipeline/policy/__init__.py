"""Policy: how check results become findings with a severity and an action."""
