"""External methods: export a suite's requests, import or run a method's outputs (see README.md here)."""
