"""Sanke composition root."""
