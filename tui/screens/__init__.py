"""Modal screens: help, confirmations, the target picker."""
