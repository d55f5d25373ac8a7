"""Pydantic models of every JSON document that crosses a boundary. Imports nothing else of rdbridge."""
