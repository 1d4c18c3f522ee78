"""The one training loop shared by Skip, SimLabel and SimLabel + confidence."""
