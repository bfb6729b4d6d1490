"""The harness a check runs in: suite, method groups, isolation, noise, precision, progress."""
