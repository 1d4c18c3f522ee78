"""Kedro pipelines: thin wiring around the method library, one folder per stage."""
