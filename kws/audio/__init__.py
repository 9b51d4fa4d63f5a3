"""Getting audio in: files, the ring buffer, and the microphone."""
