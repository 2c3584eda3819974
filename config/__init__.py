"""Configuration: `config.settings.Settings` is the one place that reads the environment."""
