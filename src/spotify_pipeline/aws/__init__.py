"""AWS Lambda entry points: event -> settings -> the same library calls as the CLI."""
