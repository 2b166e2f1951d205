"""问渝: retrieval-augmented question answering over Chinese documents, with cited answers."""

__version__ = "0.1.0"
