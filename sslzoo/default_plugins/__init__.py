"""The built-in plugins: strategies, datasets and models, registered like third-party ones."""
