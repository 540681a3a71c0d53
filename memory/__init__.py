"""Long-term memory (LanceDB): stored turns, recall chunks and memory cards."""
