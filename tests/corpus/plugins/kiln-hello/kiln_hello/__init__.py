"""A third-party Kiln plugin used by Kiln's tests."""
