"""Answers composed of parts: comparisons, several facts, lists, and facts of a named time (issue 35)."""
